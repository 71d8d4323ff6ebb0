/**
 * The OpenAI-compatible Responses route against the plain dual-call SSE route: CPU of the server process
 * per token delivered. One server mounts both handlers on one registry and one model, as the example
 * server does (`responses(req, res, () => jobs(req, res))`); the clients (a second process) open N
 * streams over one route: `POST /v1/inference` then `GET {sse_url}`, or `POST /v1/responses` with
 * `background: true, stream: true`. Once every stream has its first bytes, the model gives every job one
 * token per round, a round per setImmediate (the producer loop of the sse section), K rounds, then
 * completes them. CPU is `process.cpuUsage()` (user + system, every thread: GC included) of the server
 * process, from before the first request to the last stream's end: creates, streams, terminal events
 * (the Responses route repeats the whole text four times at the end) and the producer loop, which is the
 * same for both. Figures per token: total, and the streaming phase alone (first token to last end).
 */
import { fork } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Observable, type Subscriber } from 'rxjs';
import { JobRegistry } from '../../src/core/index.js';
import { createJobHandler, createResponsesHandler } from '../../src/http/index.js';
import { QUICK, figure, gc, median, ratio, report, type Figure, type Ratio } from '../lib.js';
import { waitFor, peerArgs } from '../ipc.js';
import type { Done, Open, Route } from '../responses-peer.js';

const STREAMS = QUICK ? 20 : 100;
const TOKENS = QUICK ? 200 : 1000;
const REPS = QUICK ? 3 : 7;
const ROUTES: Route[] = ['plain', 'responses'];
const NAMES: Record<Route, string> = {
  plain: 'job-registry dual-call route (POST /v1/inference + GET stream)',
  responses: 'job-registry Responses route (POST /v1/responses, background + stream)',
};

/** Token k's text: a short word, as a model's tokens are. */
const word = (k: number): string => ` w${k % 1000}`;

interface Run {
  /** Server CPU per token, whole run (µs). */
  total: number;
  /** Server CPU per token, from the first token to the last stream's end (µs). */
  streaming: number;
  /** Body bytes per token the clients read. */
  bytes: number;
}

const peer = fork(new URL('../responses-peer.ts', import.meta.url).pathname, [], {
  execArgv: peerArgs(['--import', 'tsx']),
  stdio: 'inherit',
});
peer.setMaxListeners(0); // waitFor listens for the peer's exit on every call

async function run(route: Route, streams: number, tokens: number): Promise<Run> {
  // The model: its jobs wait for the producer loop below, which starts once every stream is open.
  const live: Array<Subscriber<string>> = [];
  const model = (): Observable<string> => new Observable<string>((sub) => void live.push(sub));
  const registry = new JobRegistry<string, unknown>();
  const jobs = createJobHandler(registry, { execute: model, heartbeatMs: 0 });
  const responses = createResponsesHandler(registry, {
    execute: model,
    toPayload: (req) => ({ input: req.input }),
    heartbeatMs: 0,
  });
  const server: Server = createServer((req, res) => responses(req, res, () => jobs(req, res)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  try {
    gc();
    const ready = waitFor(peer, 'ready');
    const done = waitFor<Done>(peer, 'done');
    const c0 = process.cpuUsage();
    peer.send({ type: 'open', port, route, streams } satisfies Open & { type: string });
    await ready;
    if (live.length !== streams) throw new Error(`${live.length} jobs running, ${streams} streams open`);
    const c1 = process.cpuUsage();
    for (let k = 0; k < tokens; k++) {
      const text = word(k);
      for (const sub of live) sub.next(text);
      await new Promise((r) => setImmediate(r));
    }
    for (const sub of live) sub.complete();
    const d = await done;
    const all = process.cpuUsage(c0);
    const streaming = process.cpuUsage(c1);
    const n = streams * tokens;
    if (d.tokens !== n || d.completed !== streams)
      throw new Error(`${route}: clients got ${d.tokens} of ${n} tokens, ${d.completed} of ${streams} ends`);
    return {
      total: (all.user + all.system) / n,
      streaming: (streaming.user + streaming.system) / n,
      bytes: d.bytes / n,
    };
  } finally {
    responses.close();
    jobs.close();
    await registry.dispose();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

try {
  await waitFor(peer, 'up');
  // Loads and optimizes both routes' code paths before anything counts.
  for (const route of ROUTES) await run(route, STREAMS, QUICK ? 100 : 200);
  const runs: Record<Route, Run[]> = { plain: [], responses: [] };
  const pairs: number[] = [];
  const streamingPairs: number[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    const order = rep % 2 === 0 ? ROUTES : [...ROUTES].reverse();
    const res = {} as Record<Route, Run>;
    for (const route of order) res[route] = await run(route, STREAMS, TOKENS);
    for (const route of ROUTES) runs[route].push(res[route]);
    pairs.push(res.responses.total / res.plain.total);
    streamingPairs.push(res.responses.streaming / res.plain.streaming);
  }
  const load = `${STREAMS} streams x ${TOKENS} tokens`;
  const figures: Figure[] = [];
  for (const route of ROUTES)
    figures.push(
      figure(
        `${load}: server CPU per token: ${NAMES[route]}`,
        'µs',
        runs[route].map((r) => r.total),
      ),
      figure(
        `${load}: server CPU per token while streaming: ${NAMES[route]}`,
        'µs',
        runs[route].map((r) => r.streaming),
      ),
      figure(
        `${load}: bytes on the wire per token: ${NAMES[route]}`,
        'bytes',
        runs[route].map((r) => r.bytes),
      ),
    );
  const ratios: Ratio[] = [
    ratio(
      `${load}: Responses route server CPU per token vs dual-call SSE route (at most)`,
      pairs,
      1.2,
      false,
      NAMES.plain,
      `while streaming alone: ${median(streamingPairs).toFixed(2)} (${Math.min(...streamingPairs).toFixed(2)} - ${Math.max(...streamingPairs).toFixed(2)})`,
    ),
  ];
  report({
    section: 'responses',
    figures,
    ratios,
    notes: [
      `${REPS} repetitions after one untimed run of each route, alternating order; clients in a second process; ` +
        `CPU is process.cpuUsage (user + system) of the server process, from before the first request to ` +
        `the last stream's end, over the tokens delivered; one server mounts both handlers on one registry`,
    ],
  });
} finally {
  peer.kill();
}
