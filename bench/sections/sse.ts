/**
 * SSE over loopback: N concurrent streams of K tokens, the readers in a second process. job-registry's
 * Node handler against a bare Node `http` SSE server that keeps a Set of responses per job and joins each
 * tick's tokens into one write per connection (what a competent hand-rolled server does), and against
 * job-registry's Web-standard fetch handler mounted in a hono app on `@hono/node-server` (as
 * test/fetch mounts it: `app.all('/v1/*', (c) => handler(c.req.raw))`), and against the bare server's
 * work done the fetch way on the same adaptor (the fetch path's floor). All use the same producer loop:
 * one token per job per round, a round per setImmediate. Tokens carry the producer's clock, so the reader
 * measures producer-to-reader latency. Delivered tokens/s counts from the first emit to the last token
 * read; the server process's CPU per token (process.cpuUsage over the same span) is reported beside it.
 * One reader process serves every run. Every system runs once untimed first (JIT warm-up); then the
 * repetitions rotate the order of the four.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { Hono } from 'hono';
import { JobRegistry } from '../../src/core/index.js';
import { createFetchHandler } from '../../src/fetch/index.js';
import { createJobHandler } from '../../src/http/index.js';
import { QUICK, figure, median, ratio, report, type Figure, type Ratio } from '../lib.js';
import { peerArgs } from '../ipc.js';

const TOKENS = QUICK ? 200 : 1000;
const STREAMS = QUICK ? [1, 100] : [1, 100, 1000];
const REPS = QUICK ? 3 : 5;
const now = (): number => performance.timeOrigin + performance.now();
const FETCH = 'job-registry fetch handler (hono, @hono/node-server)';
const FLOOR = 'bare Web Streams SSE (hono, @hono/node-server)';

interface Target {
  server: Server;
  paths: string[];
  emitRound(): void;
  finish(): void;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as AddressInfo).port;
}

/** `n` jobs of `registry`, streamed by `server` through `handler`: what both of our targets share. */
function registryTarget(
  n: number,
  registry: JobRegistry<number>,
  handler: { close(): void },
  server: Server,
): Target {
  const ids = Array.from({ length: n }, () => registry.createJob());
  return {
    server,
    paths: ids.map((id) => `/v1/inference/${id}/stream`),
    emitRound: () => {
      for (const id of ids) registry.emit(id, now());
    },
    finish: () => ids.forEach((id) => registry.updateState(id, 'completed')),
    close: async () => {
      await registry.dispose();
      handler.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function ours(n: number): Target {
  const registry = new JobRegistry<number>({ replayLimit: TOKENS });
  const handler = createJobHandler(registry, { heartbeatMs: 0, serialize: (t) => String(t) });
  return registryTarget(
    n,
    registry,
    handler,
    createServer((req, res) => handler(req, res)),
  );
}

/** The fetch handler in a hono app, served by `@hono/node-server` (`serve()` is this plus `listen`). */
function fetched(n: number): Target {
  const registry = new JobRegistry<number>({ replayLimit: TOKENS });
  const handler = createFetchHandler(registry, { heartbeatMs: 0, serialize: (t) => String(t) });
  const app = new Hono();
  app.all('/v1/*', (c) => handler(c.req.raw));
  return registryTarget(n, registry, handler, createAdaptorServer({ fetch: app.fetch }) as Server);
}

/** One open stream of a bare server: what its tick has joined so far, and whether its flush is queued. */
interface BareConn {
  pending: string;
  scheduled: boolean;
}

/**
 * What both bare servers do, whatever they write to: a Set of streams per job, each tick's tokens of a
 * stream joined into one write (flushed in a microtask), and the done event to end them.
 */
function bareFanout<C extends BareConn>(
  n: number,
  write: (c: C, text: string) => void,
  end: (c: C, text: string) => void,
): { conns: Map<string, Set<C>>; paths: string[]; emitRound(): void; finish(): void } {
  const conns = new Map<string, Set<C>>();
  const seq = new Map<string, number>();
  const ids = Array.from({ length: n }, (_, i) => `job-${i}`);
  for (const id of ids) (conns.set(id, new Set()), seq.set(id, 0));
  const flush = (c: C): void => {
    c.scheduled = false;
    write(c, c.pending);
    c.pending = '';
  };
  return {
    conns,
    paths: ids.map((id) => `/v1/inference/${id}/stream`),
    emitRound: () => {
      for (const id of ids) {
        const s = seq.get(id)!;
        seq.set(id, s + 1);
        const text = `id: ${s}\nevent: token\ndata: ${now()}\n\n`;
        for (const c of conns.get(id)!) {
          c.pending += text;
          if (!c.scheduled) {
            c.scheduled = true;
            queueMicrotask(() => flush(c));
          }
        }
      }
    },
    finish: () => {
      for (const id of ids)
        for (const c of conns.get(id)!) {
          end(c, c.pending + 'event: done\ndata: {"state":"completed"}\n\n');
          c.pending = '';
        }
    },
  };
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
}

function bare(n: number): Target {
  type Conn = BareConn & { res: ServerResponse };
  const fanout = bareFanout<Conn>(
    n,
    (c, text) => c.res.write(text),
    (c, text) => c.res.end(text),
  );
  const server = createServer((req, res) => {
    const set = fanout.conns.get(req.url!.split('/')[3]!)!;
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    res.write('retry: 1000\n\n');
    const c = { res, pending: '', scheduled: false };
    set.add(c);
    res.on('close', () => set.delete(c));
  });
  return { ...fanout, server, close: () => closeServer(server) };
}

/**
 * The fetch path's floor: the bare server's work as a hono app on `@hono/node-server`, each stream a
 * `ReadableStream` the producer enqueues into. No job-registry code: what Web Streams and the adaptor
 * cost per chunk.
 */
function bareFetch(n: number): Target {
  type Conn = BareConn & { c: ReadableStreamDefaultController<Uint8Array> };
  const encoder = new TextEncoder();
  const fanout = bareFanout<Conn>(
    n,
    (c, text) => c.c.enqueue(encoder.encode(text)),
    (c, text) => (c.c.enqueue(encoder.encode(text)), c.c.close()),
  );
  const app = new Hono();
  app.get('/v1/inference/:id/stream', (ctx) => {
    const set = fanout.conns.get(ctx.req.param('id'))!;
    let conn: Conn | undefined;
    const body = new ReadableStream<Uint8Array>({
      start: (c) => {
        conn = { c, pending: '', scheduled: false };
        set.add(conn);
        c.enqueue(encoder.encode('retry: 1000\n\n'));
      },
      cancel: () => void set.delete(conn!),
    });
    return new Response(body, {
      headers: { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' },
    });
  });
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  return { ...fanout, server, close: () => closeServer(server) };
}

function message<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { type: string }): void => {
      if (m.type === type) {
        child.off('message', on);
        resolve(m as T);
      }
    };
    child.on('message', on);
  });
}

// One reader process for every run (it opens a fresh set of streams per run): no process start per run.
const reader = fork(new URL('../sse-reader.ts', import.meta.url).pathname, [], {
  execArgv: peerArgs(['--import', 'tsx']),
  stdio: 'inherit',
});
await message(reader, 'up');

async function run(
  make: (n: number) => Target,
  n: number,
): Promise<{ rate: number; p99: number; p50: number; cpu: number }> {
  const target = make(n);
  const port = await listen(target.server);
  const ready = message(reader, 'ready');
  // Every token's latency on small runs (1 stream), so that p99 is not the largest of a few samples.
  reader.send({ port, paths: target.paths, sample: n * TOKENS <= 20_000 ? 1 : 8 });
  await ready;
  const result = message<{ tokens: number; last: number; p50: number; p99: number }>(reader, 'result');
  const start = now();
  const c0 = process.cpuUsage();
  for (let k = 0; k < TOKENS; k++) {
    target.emitRound();
    await new Promise((r) => setImmediate(r));
  }
  target.finish();
  const r = await result;
  const cpu = process.cpuUsage(c0);
  await target.close();
  if (r.tokens !== n * TOKENS) throw new Error(`reader got ${r.tokens} of ${n * TOKENS} tokens`);
  // From the first emit to the last token read: a stream whose tokens reach the reader in one burst
  // (1 stream, a fast producer) is not credited with the burst's rate.
  return {
    rate: r.tokens / Math.max((r.last - start) / 1000, 1e-6),
    p99: r.p99,
    p50: r.p50,
    // Server process (producer loop included, the same for all), per token: less sensitive to a
    // shared machine than the rate.
    cpu: (cpu.user + cpu.system) / r.tokens,
  };
}

/** A ratio's median and min - max, for a note. */
const spread = (xs: number[]): string =>
  `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)} - ${Math.max(...xs).toFixed(2)})`;

const SYSTEMS = [ours, bare, fetched, bareFetch];
// Each repetition runs the four in another order: each system takes each place once in four repetitions.
const ORDERS = [
  [0, 1, 2, 3],
  [3, 2, 1, 0],
  [1, 3, 0, 2],
  [2, 0, 3, 1],
  [0, 2, 1, 3],
].map((o) => o.map((i) => SYSTEMS[i]!));
const WARMUP = { streams: QUICK ? 20 : 100 };

// Loads and optimizes each system's code path before anything counts.
for (const make of SYSTEMS) await run(make, WARMUP.streams);

const figures: Figure[] = [];
const ratios: Ratio[] = [];
for (const n of STREAMS) {
  const rateRatio: number[] = [];
  const p99Ratio: number[] = [];
  const fetchRateRatio: number[] = [];
  const fetchP99Ratio: number[] = [];
  const ourRate: number[] = [];
  const bareRate: number[] = [];
  const fetchRate: number[] = [];
  const ourP99: number[] = [];
  const bareP99: number[] = [];
  const fetchP99: number[] = [];
  const floorRate: number[] = [];
  const floorRatio: number[] = [];
  const cpu = { ours: [] as number[], bare: [] as number[], fetched: [] as number[], floor: [] as number[] };
  for (let rep = 0; rep < REPS; rep++) {
    const res = new Map<unknown, { rate: number; p99: number; cpu: number }>();
    for (const make of ORDERS[rep % ORDERS.length]!) res.set(make, await run(make, n));
    const o = res.get(ours)!;
    const b = res.get(bare)!;
    const f = res.get(fetched)!;
    const ff = res.get(bareFetch)!;
    ourRate.push(o.rate);
    bareRate.push(b.rate);
    fetchRate.push(f.rate);
    ourP99.push(o.p99);
    bareP99.push(b.p99);
    fetchP99.push(f.p99);
    cpu.ours.push(o.cpu);
    cpu.bare.push(b.cpu);
    cpu.fetched.push(f.cpu);
    cpu.floor.push(ff.cpu);
    floorRate.push(ff.rate);
    floorRatio.push(ff.rate / b.rate);
    rateRatio.push(o.rate / b.rate);
    p99Ratio.push(o.p99 / Math.max(b.p99, 0.01));
    fetchRateRatio.push(f.rate / o.rate);
    fetchP99Ratio.push(f.p99 / Math.max(o.p99, 0.01));
  }
  figures.push(figure(`SSE ${n} streams x ${TOKENS} tokens: job-registry`, 'tokens/s', ourRate));
  figures.push(figure(`SSE ${n} streams x ${TOKENS} tokens: bare http SSE`, 'tokens/s', bareRate));
  figures.push(figure(`SSE ${n} streams x ${TOKENS} tokens: ${FETCH}`, 'tokens/s', fetchRate));
  figures.push(figure(`SSE ${n} streams x ${TOKENS} tokens: ${FLOOR}`, 'tokens/s', floorRate));
  figures.push(
    figure(`SSE ${n} streams: ${FLOOR} vs bare http SSE (the fetch path's floor)`, 'x', floorRatio),
  );
  figures.push(figure(`SSE ${n} streams p99 latency: job-registry`, 'ms', ourP99));
  figures.push(figure(`SSE ${n} streams p99 latency: bare http SSE`, 'ms', bareP99));
  figures.push(figure(`SSE ${n} streams p99 latency: ${FETCH}`, 'ms', fetchP99));
  figures.push(figure(`SSE ${n} streams server CPU per token: job-registry node handler`, 'µs', cpu.ours));
  figures.push(figure(`SSE ${n} streams server CPU per token: bare http SSE`, 'µs', cpu.bare));
  figures.push(figure(`SSE ${n} streams server CPU per token: ${FETCH}`, 'µs', cpu.fetched));
  figures.push(figure(`SSE ${n} streams server CPU per token: ${FLOOR}`, 'µs', cpu.floor));
  ratios.push(
    ratio(
      `SSE ${n} streams: delivered tokens/s vs bare`,
      rateRatio,
      0.9,
      true,
      'bare http SSE, one write per tick',
    ),
  );
  ratios.push(
    ratio(
      `SSE ${n} streams: p99 latency vs bare (at most)`,
      p99Ratio,
      1.3,
      false,
      'bare http SSE, one write per tick',
    ),
  );
  ratios.push(
    ratio(
      `SSE ${n} streams: fetch handler on @hono/node-server, delivered tokens/s vs node handler`,
      fetchRateRatio,
      0.8,
      true,
      'job-registry node handler (createJobHandler), same run',
      `p99 latency fetch/node ${spread(fetchP99Ratio)}; server CPU per token fetch/node ${spread(
        cpu.fetched.map((c, i) => c / cpu.ours[i]!),
      )}; floor: ${FLOOR} vs bare http SSE ${spread(floorRatio)}`,
    ),
  );
}
reader.kill();
report({
  section: 'sse',
  figures,
  ratios,
  notes: [
    `${REPS} repetitions after one untimed run of each system, order rotated; readers in a second process; ` +
      `tokens/s = tokens / (first emit -> last token read); ` +
      `${FETCH}: createFetchHandler in a hono app (app.all('/v1/*', (c) => handler(c.req.raw))) on ` +
      `@hono/node-server's createAdaptorServer; ${FLOOR}: the bare server's work as a hono app, each ` +
      `stream a ReadableStream it enqueues one chunk per tick into (no job-registry code)`,
  ],
});
