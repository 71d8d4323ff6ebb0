/**
 * Connections: 10,000 concurrent SSE streams held by one server, heartbeats on. Each client streams a job
 * of its own (`GET /v1/inference/{id}/stream` of a running job with no tokens yet), as many users waiting
 * on their answers do. The server runs in this process; the clients (raw `net` sockets) in a second one, so
 * the heap measured is the server's alone. Servers:
 * - ours: job-registry's handler over a JobRegistry, as shipped: src bundled by esbuild at the start of
 *   the section (tsc's output allocates the same). Loaded through tsx instead, every arrow function of
 *   src gets esbuild's `keepNames` wrapper, which puts its `name` in a property dictionary of its own
 *   (about 250 bytes for each closure a stream holds): the `tsx` figure shows that cost, which a release
 *   build does not pay;
 * - bare: a Node `http` SSE server that keeps a Set of responses and pings them: Node's own floor.
 * Figures: streams held (the lower of the handler's `connections` and the clients that got a 200 and the
 * stream's first bytes), heap per open stream (heap after GC with every stream open and pinged once, less
 * the heap before opening, over the streams held), and the heap once every client has closed, against the
 * heap before. Run with --expose-gc. Node raises its soft open-file limit to the hard one at startup;
 * each process needs one descriptor per stream (plus a few).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { JobRegistry } from '../../src/core/index.js';
import { createJobHandler } from '../../src/http/index.js';
import { comment, retryField } from '../../src/protocol/sse.js';
import { QUICK, figure, median, ratio, report, settledHeapUsed, type Figure, type Ratio } from '../lib.js';
import type { Opened } from '../connections-peer.js';
import { waitFor, peerArgs } from '../ipc.js';

const N = QUICK ? 500 : 10_000;
const REPS = QUICK ? 2 : 3;
const WARMUP = QUICK ? 100 : 1000;
const HEARTBEAT_MS = QUICK ? 250 : 1000;
/** Clients connecting at once (the listen backlog is larger). */
const WINDOW = 500;
/** Streams not open by then count as not held. */
const OPEN_DEADLINE_MS = QUICK ? 15_000 : 60_000;
/** The goal: heap per open stream. */
const GOAL_BYTES = 5.5 * 1024;
const SYSTEMS = ['ours', 'tsx', 'bare'] as const;
type System = (typeof SYSTEMS)[number];

interface Lib {
  JobRegistry: typeof JobRegistry;
  createJobHandler: typeof createJobHandler;
}

/** src's registry and handler bundled as a release build is (no keepNames), in a temporary directory. */
async function shipped(): Promise<Lib> {
  const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
  const dir = mkdtempSync(join(tmpdir(), 'jr-bench-connections-'));
  try {
    const outfile = join(dir, 'lib.mjs');
    await build({
      stdin: {
        contents:
          "export { JobRegistry } from './src/core/index.ts';\nexport { createJobHandler } from './src/http/index.ts';\n",
        resolveDir: root,
        loader: 'ts',
      },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: `node${process.versions.node}`,
      outfile,
      logLevel: 'error',
    });
    return (await import(pathToFileURL(outfile).href)) as Lib;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Target {
  server: Server;
  paths: string[];
  /** Open streams as the server counts them. */
  connections(): number;
  close(): Promise<void>;
}

function ours(lib: Lib, n: number): Target {
  const registry = new lib.JobRegistry<string>();
  const handler = lib.createJobHandler(registry, { heartbeatMs: HEARTBEAT_MS });
  const server = createServer((req, res) => handler(req, res));
  const ids = Array.from({ length: n }, () => registry.createJob());
  // Live jobs: a producer has started them and not sent a token yet.
  for (const id of ids) registry.updateState(id, 'running');
  return {
    server,
    paths: ids.map((id) => `/v1/inference/${id}/stream`),
    connections: () => handler.connections,
    close: async () => {
      await registry.dispose();
      handler.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function bare(n: number): Target {
  const open = new Set<ServerResponse>();
  const ping = comment('ping');
  const heartbeat = setInterval(() => {
    for (const res of open) res.write(ping);
  }, HEARTBEAT_MS);
  const server = createServer((_req, res) => {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      'X-Accel-Buffering': 'no',
    });
    res.write(retryField(1000));
    open.add(res);
    res.on('close', () => open.delete(res));
  });
  return {
    server,
    paths: Array.from({ length: n }, (_, i) => `/v1/inference/job-${i}/stream`),
    connections: () => open.size,
    close: async () => {
      clearInterval(heartbeat);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, ok: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`connections: ${what} not reached within ${ms} ms`);
    await sleep(20);
  }
}

const sockets = (server: Server): Promise<number> =>
  new Promise((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n))));

interface Run {
  held: number;
  serverHeld: number;
  clientsOk: number;
  pinged: number;
  openMs: number;
  perStream: number;
  before: number;
  after: number;
  failures: Record<string, number>;
}

async function run(target: Target, peer: ChildProcess): Promise<Run> {
  await new Promise<void>((r) => target.server.listen({ port: 0, host: '127.0.0.1', backlog: 2048 }, r));
  const port = (target.server.address() as AddressInfo).port;
  try {
    const before = await settledHeapUsed();
    const opened = waitFor<Opened>(peer, 'opened');
    peer.send({ type: 'open', port, paths: target.paths, window: WINDOW, deadlineMs: OPEN_DEADLINE_MS });
    const { ok: clientsOk, ms: openMs, failures } = await opened;
    const serverHeld = target.connections();
    // Every stream is held while heartbeats go out: the heap is measured after each got one.
    const held = waitFor<{ pinged: number }>(peer, 'held');
    peer.send({ type: 'hold', ms: HEARTBEAT_MS * 3 });
    const { pinged } = await held;
    const open = await settledHeapUsed();
    const stillHeld = Math.min(serverHeld, target.connections());
    const closed = waitFor(peer, 'closed');
    peer.send({ type: 'close' });
    await closed;
    await until(
      'every stream closed on the server',
      async () => target.connections() === 0 && (await sockets(target.server)) === 0,
      10_000,
    );
    const after = await settledHeapUsed();
    return {
      held: Math.min(stillHeld, clientsOk),
      serverHeld: stillHeld,
      clientsOk,
      pinged,
      openMs,
      perStream: (open - before) / Math.max(stillHeld, 1),
      before,
      after,
      failures,
    };
  } finally {
    await target.close();
  }
}

/** The soft limit on open files (Linux), after Node raised it to the hard one at startup. */
function openFileLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    return soft === undefined ? undefined : soft === 'unlimited' ? Infinity : Number(soft);
  } catch {
    return undefined;
  }
}

const built = await shipped();
const make: Record<System, (n: number) => Target> = {
  ours: (n) => ours(built, n),
  tsx: (n) => ours({ JobRegistry, createJobHandler }, n),
  bare,
};
const peer = fork(new URL('../connections-peer.ts', import.meta.url).pathname, [], {
  execArgv: peerArgs(['--import', 'tsx']),
  stdio: 'inherit',
});
peer.setMaxListeners(0); // waitFor listens for the peer's exit on every call
const notes: string[] = [];
try {
  await waitFor(peer, 'up');
  const limit = openFileLimit();
  if (limit !== undefined && limit < N + 100)
    notes.push(`open-file limit ${limit} is below ${N} streams + 100: raise \`ulimit -n\``);
  // Loads and optimizes the code paths, and fills Node's pool of HTTP parsers, before anything counts.
  for (const s of SYSTEMS) await run(make[s](WARMUP), peer);

  const runs: Record<System, Run[]> = { ours: [], tsx: [], bare: [] };
  for (let rep = 0; rep < REPS; rep++) {
    const order = rep % 2 === 0 ? SYSTEMS : [...SYSTEMS].reverse();
    for (const s of order) runs[s].push(await run(make[s](N), peer));
  }
  const o = runs.ours;
  for (const s of SYSTEMS)
    for (const [rep, r] of runs[s].entries())
      if (Object.keys(r.failures).length > 0)
        notes.push(`${s} run ${rep + 1}: streams that failed to open: ${JSON.stringify(r.failures)}`);
  const perStream = (s: System): number[] => runs[s].map((r) => r.perStream);
  const figures: Figure[] = [
    figure(
      `${N} SSE streams held at once (server count and clients with 200 + first bytes): job-registry`,
      'streams',
      o.map((r) => r.held),
    ),
    figure(
      `${N} SSE streams, open on the server (handler.connections)`,
      'streams',
      o.map((r) => r.serverHeld),
    ),
    figure(
      `${N} SSE streams, clients with 200 + first bytes`,
      'streams',
      o.map((r) => r.clientsOk),
    ),
    figure(
      `${N} SSE streams, clients that got a heartbeat while all were held`,
      'streams',
      o.map((r) => r.pinged),
    ),
    figure(
      `time to open ${N} SSE streams (${WINDOW} connecting at once), job-registry`,
      'ms',
      o.map((r) => r.openMs),
    ),
    figure(`heap per open SSE stream, ${N} held: job-registry`, 'bytes', perStream('ours')),
    figure(
      `heap per open SSE stream, ${N} held: job-registry src under tsx (keepNames)`,
      'bytes',
      perStream('tsx'),
    ),
    figure(
      `heap per open SSE stream, ${N} held: bare http SSE (a Set of responses)`,
      'bytes',
      perStream('bare'),
    ),
    figure(
      `heap before opening ${N} SSE streams`,
      'bytes',
      o.map((r) => r.before),
    ),
    figure(
      `heap after all ${N} SSE streams closed`,
      'bytes',
      o.map((r) => r.after),
    ),
  ];
  const ratios: Ratio[] = [
    ratio(
      `concurrent SSE streams held, heartbeats on (count, at least)`,
      o.map((r) => r.held),
      N,
      true,
      'every stream opened',
    ),
    ratio(
      `heap per open SSE stream (bytes, at most)`,
      perStream('ours'),
      GOAL_BYTES,
      false,
      'absolute target (5.5 KiB)',
      `bare http SSE: ${Math.round(median(perStream('bare')))} bytes`,
    ),
    ratio(
      `heap growth after ${N} SSE streams closed (fraction, at most)`,
      o.map((r) => (r.after - r.before) / r.before),
      0.1,
      false,
      'heap before opening',
    ),
  ];
  notes.unshift(
    `${REPS} repetitions after a warm-up of ${WARMUP} streams, alternating with a bare http SSE server; ` +
      `clients (raw net sockets) in a second process; heartbeatMs ${HEARTBEAT_MS}, heap measured after ` +
      `forced GCs once every held stream got a heartbeat; job-registry as bundled by esbuild (no keepNames)`,
  );
  report({ section: 'connections', figures, ratios, notes });
} finally {
  peer.kill();
}
