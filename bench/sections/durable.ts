/**
 * Durable Streams over loopback: job-registry's handler (`createDurableStreamsHandler` over an in-memory
 * JobRegistry, on Node `http`) against the protocol's reference server (`@durable-streams/server`, its
 * in-memory `DurableStreamTestServer`), side by side in one run, on the same work:
 * - fan-out: one writer appends small text chunks to one stream, which many live SSE readers follow;
 * - many streams: one live SSE reader per stream, one chunk appended to each stream in turn.
 * The server runs in this process; the writer (POSTs, a window of them in flight) and the readers
 * (`live=sse`) run in two peer processes over raw sockets, so the CPU measured here is the server's.
 * Chunks carry their send time: a reader measures append-to-delivery latency. Each system first runs
 * untimed (JIT warm-up); the repetitions rotate which system goes first. Beside them runs a floor: Node
 * `http` doing the least this work needs, without the protocol (see `floor`), so a ratio to the
 * reference can be set against the most any server on Node `http` reaches.
 *
 * A run has a time budget: the reference server rereads a stream from its first chunk on every wake of
 * an SSE reader (its `findOffsetIndex` is a linear scan), so its cost per chunk grows with the stream and
 * the full fan-out (10,000 chunks x 100 readers) takes it about ten minutes. A run past its budget stops
 * appending and is measured on what was delivered until then: that flatters the system cut off (its
 * rate falls and its latency rises as its stream grows), and the notes say which runs were cut off.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DurableStreamTestServer } from '@durable-streams/server';
import { JobRegistry } from '../../src/core/index.js';
import { createDurableStreamsHandler } from '../../src/durable-streams/index.js';
import type { Result, Written } from '../durable-peer.js';
import { waitFor, peerArgs } from '../ipc.js';
import { QUICK, figure, gc, median, ratio, report, type Figure, type Ratio } from '../lib.js';

/** POSTs in flight at once (one keep-alive connection each). */
const INFLIGHT = 8;
/** Bytes of a chunk: its send time, padded. */
const CHUNK_BYTES = 32;
/**
 * The work, and its repetitions: a full fan-out run takes the reference its whole budget; the
 * many-streams runs are short, so noisier, and cheap to repeat.
 */
const FANOUT = { chunks: QUICK ? 1_000 : 10_000, readers: QUICK ? 10 : 100, reps: 3 };
const MANY = { streams: QUICK ? 100 : 1_000, chunks: QUICK ? 1_000 : 20_000, reps: QUICK ? 3 : 5 };
/**
 * Untimed runs first: a short fan-out, then enough appends over many streams that both servers' append
 * paths are optimized (job-registry's, loaded through tsx, takes longer to get there).
 */
const WARMUP = { fanoutChunks: 500, readers: 10, streams: 100, manyChunks: QUICK ? 2_000 : 5_000 };
/** A run's time budget, from its first append (see the header). */
const BUDGET_MS = QUICK ? 10_000 : 45_000;
/** A run not done by then fails the section instead of hanging it. */
const DEADLINE_MS = BUDGET_MS + 60_000;
const OURS = 'job-registry';
const REF = '@durable-streams/server';
const FLOOR = 'bare Node http (the floor)';
const BASE = '/v1/stream';

interface Target {
  port: number;
  close(): Promise<void>;
}

async function ours(): Promise<Target> {
  const registry = new JobRegistry();
  const handler = createDurableStreamsHandler(registry);
  const server = createServer((req, res) => handler(req, res));
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      handler.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await registry.dispose();
    },
  };
}

async function reference(): Promise<Target> {
  const server = new DurableStreamTestServer({ port: 0, host: '127.0.0.1' });
  const url = await server.start();
  return { port: Number(new URL(url).port), close: () => server.stop() };
}

/**
 * The floor: Node `http` doing the least any server of this work must (keep each chunk, answer the
 * append, write it to the stream's live readers as one SSE event), without the protocol (no offsets,
 * headers, content types, resumption or limits). Not a Durable Streams server: how much of a chunk's
 * CPU is Node's HTTP and the socket writes.
 */
async function floor(): Promise<Target> {
  const streams = new Map<string, { chunks: string[]; readers: Set<ServerResponse> }>();
  const server = createServer((req, res) => {
    const path = req.url!.split('?')[0]!;
    if (req.method === 'PUT') {
      streams.set(path, { chunks: [], readers: new Set() });
      res.writeHead(201, { 'Content-Length': 0 });
      return void res.end();
    }
    const stream = streams.get(path);
    if (stream === undefined) {
      res.writeHead(404, { 'Content-Length': 0 });
      return void res.end();
    }
    if (req.method === 'GET') {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      res.socket?.setNoDelay(true);
      res.write('event: control\ndata: {}\n\n');
      stream.readers.add(res);
      return void res.on('close', () => stream.readers.delete(res));
    }
    req.setEncoding('utf8');
    let body = '';
    req.on('data', (text: string) => void (body += text));
    req.on('end', () => {
      stream.chunks.push(body);
      res.writeHead(204);
      res.end();
      const event = `event: data\ndata: ${body}\n\n`;
      for (const r of stream.readers) r.write(event);
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const SYSTEMS = { [OURS]: ours, [REF]: reference, [FLOOR]: floor } as const;
type System = keyof typeof SYSTEMS;

interface Work {
  /** Streams the writer creates and appends to in turn. */
  streams: string[];
  /** One live SSE read per entry. */
  reads: string[];
  /** Appends in all. */
  chunks: number;
}

const fanout = (chunks: number, readers: number): Work => ({
  streams: [`${BASE}/fanout`],
  reads: Array.from({ length: readers }, () => `${BASE}/fanout`),
  chunks,
});
const many = (streams: number, chunks: number): Work => {
  const paths = Array.from({ length: streams }, (_, i) => `${BASE}/s-${i}`);
  return { streams: paths, reads: paths, chunks };
};

interface Run {
  rate: number;
  p50: number;
  p99: number;
  /** Server CPU per delivered chunk, µs. */
  cpu: number;
  /** The peers' CPU per delivered chunk (writer and readers), µs. */
  clientCpu: number;
  /** Stopped by the budget: the fraction of the chunks delivered; 1 when not. */
  delivered: number;
}

function peer(role: string): ChildProcess {
  const child = fork(new URL('../durable-peer.ts', import.meta.url).pathname, [role], {
    execArgv: peerArgs(['--import', 'tsx']),
    stdio: 'inherit',
  });
  child.setMaxListeners(0); // waitFor listens for the peer's exit on every call
  return child;
}

function deadline<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`durable: ${what} not done in ${DEADLINE_MS} ms`)),
        DEADLINE_MS,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

const writer = peer('writer');
const readers = peer('readers');

async function run(system: System, work: Work): Promise<Run> {
  gc();
  const target = await SYSTEMS[system]();
  const { port } = target;
  try {
    const created = waitFor(writer, 'created');
    writer.send({ type: 'create', port, paths: work.streams });
    await created;
    const expect = work.chunks / work.streams.length;
    const ready = waitFor(readers, 'ready');
    readers.send({ type: 'open', port, paths: work.reads, expect });
    await ready;
    const result = waitFor<Result>(readers, 'result');
    const written = waitFor<Written>(writer, 'written');
    const c0 = process.cpuUsage();
    writer.send({
      type: 'write',
      port,
      paths: work.streams,
      total: work.chunks,
      inflight: INFLIGHT,
      bytes: CHUNK_BYTES,
    });
    let cut = false;
    const budget = setTimeout(() => {
      cut = true;
      writer.send({ type: 'stop' });
      readers.send({ type: 'stop' });
    }, BUDGET_MS);
    const [r, w] = await deadline(Promise.all([result, written]), `${system} run`).finally(() =>
      clearTimeout(budget),
    );
    const cpu = process.cpuUsage(c0);
    const closed = Promise.all([waitFor(readers, 'closed'), waitFor(writer, 'closed')]);
    readers.send({ type: 'close' });
    writer.send({ type: 'close' });
    await closed;
    const all = work.reads.length * expect;
    if (!cut && r.chunks !== all) throw new Error(`${system}: readers got ${r.chunks} of ${all} chunks`);
    if (r.chunks === 0) throw new Error(`${system}: no chunk delivered within ${BUDGET_MS} ms`);
    return {
      // From the first append sent to the last chunk delivered to any reader.
      rate: r.chunks / Math.max((r.last - w.start) / 1000, 1e-6),
      p50: r.p50,
      p99: r.p99,
      cpu: (cpu.user + cpu.system) / r.chunks,
      clientCpu: (r.cpu + w.cpu) / r.chunks,
      delivered: r.chunks / all,
    };
  } finally {
    await target.close();
  }
}

const spread = (xs: number[]): string =>
  `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)} - ${Math.max(...xs).toFixed(2)})`;
const count = (n: number): string => n.toLocaleString('en-US');

const figures: Figure[] = [];
const ratios: Ratio[] = [];
const notes: string[] = [];
try {
  await Promise.all([waitFor(writer, 'up'), waitFor(readers, 'up')]);
  // Loads and optimizes both servers' code paths (and the peers') before anything counts.
  for (const s of [OURS, REF, FLOOR] as const) {
    await run(s, fanout(WARMUP.fanoutChunks, WARMUP.readers));
    await run(s, many(WARMUP.streams, WARMUP.manyChunks));
  }
  const scenarios: Array<{ label: string; work: Work; reps: number }> = [
    {
      label: `1 stream x ${count(FANOUT.chunks)} chunks, ${FANOUT.readers} SSE readers`,
      work: fanout(FANOUT.chunks, FANOUT.readers),
      reps: FANOUT.reps,
    },
    {
      label: `${count(MANY.streams)} streams x 1 SSE reader, ${count(MANY.chunks)} chunks in turn`,
      work: many(MANY.streams, MANY.chunks),
      reps: MANY.reps,
    },
  ];
  for (const { label, work, reps } of scenarios) {
    const runs: Record<System, Run[]> = { [OURS]: [], [REF]: [], [FLOOR]: [] };
    const systems: System[] = [OURS, REF, FLOOR];
    for (let rep = 0; rep < reps; rep++) {
      // Each repetition starts the order one system later.
      const order = systems.map((_, i) => systems[(i + rep) % systems.length]!);
      for (const s of order) runs[s].push(await run(s, work));
    }
    const o = runs[OURS];
    const f = runs[REF];
    const bare = runs[FLOOR];
    const pick = (rs: Run[], k: keyof Run): number[] => rs.map((r) => r[k]);
    for (const [name, rs] of [
      [OURS, o],
      [REF, f],
      [FLOOR, bare],
    ] as const) {
      const at = (what: string): string => `Durable Streams ${label}: ${name}, ${what}`;
      figures.push(figure(at('delivered chunks/s'), 'chunks/s', pick(rs, 'rate')));
      figures.push(figure(at('p99 append to delivery'), 'ms', pick(rs, 'p99')));
      figures.push(figure(at('p50 append to delivery'), 'ms', pick(rs, 'p50')));
      figures.push(figure(at('server CPU per delivered chunk'), 'µs', pick(rs, 'cpu')));
      figures.push(figure(at('writer + readers CPU per delivered chunk'), 'µs', pick(rs, 'clientCpu')));
      const cut = rs.filter((r) => r.delivered < 1);
      if (cut.length > 0)
        notes.push(
          `${label}: ${name}: ${cut.length} of ${rs.length} runs stopped at the ${BUDGET_MS / 1000} s budget, ` +
            `having delivered ${cut.map((r) => `${(r.delivered * 100).toFixed(0)}%`).join(', ')} of the chunks ` +
            `(its throughput and latency measured on that part, which flatters them)`,
        );
    }
    ratios.push(
      ratio(
        `Durable Streams ${label}: delivered chunks/s vs reference`,
        o.map((r, i) => r.rate / f[i]!.rate),
        2,
        true,
        `${REF}, same run`,
        `server CPU per delivered chunk ours/reference ${spread(o.map((r, i) => r.cpu / f[i]!.cpu))}; ` +
          `${FLOOR} vs reference ${spread(bare.map((r, i) => r.rate / f[i]!.rate))}, server CPU per ` +
          `delivered chunk ours/floor ${spread(o.map((r, i) => r.cpu / bare[i]!.cpu))}`,
      ),
    );
    figures.push(
      figure(
        `Durable Streams ${label}: ${FLOOR} vs reference, delivered chunks/s (the most a Node http server reaches)`,
        'x',
        bare.map((r, i) => r.rate / f[i]!.rate),
      ),
    );
    ratios.push(
      ratio(
        `Durable Streams ${label}: p99 append to delivery vs reference (at most)`,
        o.map((r, i) => r.p99 / Math.max(f[i]!.p99, 0.01)),
        1,
        false,
        `${REF}, same run`,
      ),
    );
  }
  const refVersion = (
    JSON.parse(
      readFileSync(
        new URL('../../node_modules/@durable-streams/server/package.json', import.meta.url),
        'utf8',
      ),
    ) as { version: string }
  ).version;
  notes.unshift(
    `${FANOUT.reps} (fan-out) and ${MANY.reps} (many streams) repetitions after untimed runs of each ` +
      `system, order rotated; ${REF} ${refVersion} (DurableStreamTestServer, in memory) and ` +
      `job-registry (createDurableStreamsHandler over an in-memory JobRegistry) in this process; the ` +
      `writer (POSTs of ${CHUNK_BYTES}-byte text/plain chunks, ${INFLIGHT} in flight) and the SSE readers ` +
      `in two peer processes over raw sockets; chunks/s = chunks delivered to all readers / (first ` +
      `append sent -> last chunk delivered); a run stops at ${BUDGET_MS / 1000} s; ${FLOOR}: keeps ` +
      `each chunk, answers 204, writes it to the live readers as one SSE event, nothing else`,
  );
  report({ section: 'durable', figures, ratios, notes });
} finally {
  writer.kill();
  readers.kill();
}
// The reference server's SSE reads leave 30 s long-poll timers behind its stop().
process.exit(0);
