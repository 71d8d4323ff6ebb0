/**
 * SSE over loopback: N concurrent streams of K tokens, the readers in a second process. job-registry's
 * handler against a bare Node `http` SSE server that keeps a Set of responses per job and joins each
 * tick's tokens into one write per connection (what a competent hand-rolled server does). Both use the
 * same producer loop: one token per job per round, a round per setImmediate. Tokens carry the producer's
 * clock, so the reader measures producer-to-reader latency.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { JobRegistry } from '../../src/core/index.js';
import { createJobHandler } from '../../src/http/index.js';
import { QUICK, figure, ratio, report, type Figure, type Ratio } from '../lib.js';

const TOKENS = QUICK ? 200 : 1000;
const STREAMS = QUICK ? [1, 100] : [1, 100, 1000];
const REPS = QUICK ? 2 : 5;
const now = (): number => performance.timeOrigin + performance.now();

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

function ours(n: number): Target {
  const registry = new JobRegistry<number>({ replayLimit: TOKENS });
  const handler = createJobHandler(registry, { heartbeatMs: 0, serialize: (t) => String(t) });
  const server = createServer((req, res) => handler(req, res));
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

function bare(n: number): Target {
  const conns = new Map<string, Set<{ res: ServerResponse; pending: string; scheduled: boolean }>>();
  const seq = new Map<string, number>();
  const ids = Array.from({ length: n }, (_, i) => `job-${i}`);
  for (const id of ids) (conns.set(id, new Set()), seq.set(id, 0));
  const flush = (c: { res: ServerResponse; pending: string; scheduled: boolean }): void => {
    c.scheduled = false;
    c.res.write(c.pending);
    c.pending = '';
  };
  const server = createServer((req, res) => {
    const id = req.url!.split('/')[3]!;
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    res.write('retry: 1000\n\n');
    const c = { res, pending: '', scheduled: false };
    conns.get(id)!.add(c);
    res.on('close', () => conns.get(id)!.delete(c));
  });
  const send = (id: string, text: string): void => {
    for (const c of conns.get(id)!) {
      c.pending += text;
      if (!c.scheduled) {
        c.scheduled = true;
        queueMicrotask(() => flush(c));
      }
    }
  };
  return {
    server,
    paths: ids.map((id) => `/v1/inference/${id}/stream`),
    emitRound: () => {
      for (const id of ids) {
        const s = seq.get(id)!;
        seq.set(id, s + 1);
        send(id, `id: ${s}\nevent: token\ndata: ${now()}\n\n`);
      }
    },
    finish: () => {
      for (const id of ids)
        for (const c of conns.get(id)!)
          (c.res.end(c.pending + 'event: done\ndata: {"state":"completed"}\n\n'), (c.pending = ''));
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
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

async function run(
  make: (n: number) => Target,
  n: number,
): Promise<{ rate: number; p99: number; p50: number }> {
  const target = make(n);
  const port = await listen(target.server);
  const child = fork(new URL('../sse-reader.ts', import.meta.url).pathname, [], {
    execArgv: ['--import', 'tsx'],
    stdio: 'inherit',
  });
  await message(child, 'up');
  const ready = message(child, 'ready');
  child.send({ port, paths: target.paths });
  await ready;
  const result = message<{ tokens: number; seconds: number; p50: number; p99: number }>(child, 'result');
  for (let k = 0; k < TOKENS; k++) {
    target.emitRound();
    await new Promise((r) => setImmediate(r));
  }
  target.finish();
  const r = await result;
  child.kill();
  await target.close();
  if (r.tokens !== n * TOKENS) throw new Error(`reader got ${r.tokens} of ${n * TOKENS} tokens`);
  return { rate: r.tokens / Math.max(r.seconds, 1e-6), p99: r.p99, p50: r.p50 };
}

const figures: Figure[] = [];
const ratios: Ratio[] = [];
for (const n of STREAMS) {
  const rateRatio: number[] = [];
  const p99Ratio: number[] = [];
  const ourRate: number[] = [];
  const bareRate: number[] = [];
  const ourP99: number[] = [];
  const bareP99: number[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    const order = rep % 2 === 0 ? [ours, bare] : [bare, ours];
    const res = new Map<unknown, { rate: number; p99: number }>();
    for (const make of order) res.set(make, await run(make, n));
    const o = res.get(ours)!;
    const b = res.get(bare)!;
    ourRate.push(o.rate);
    bareRate.push(b.rate);
    ourP99.push(o.p99);
    bareP99.push(b.p99);
    rateRatio.push(o.rate / b.rate);
    p99Ratio.push(o.p99 / Math.max(b.p99, 0.01));
  }
  figures.push(figure(`SSE ${n} streams x ${TOKENS} tokens: job-registry`, 'tokens/s', ourRate));
  figures.push(figure(`SSE ${n} streams x ${TOKENS} tokens: bare http SSE`, 'tokens/s', bareRate));
  figures.push(figure(`SSE ${n} streams p99 latency: job-registry`, 'ms', ourP99));
  figures.push(figure(`SSE ${n} streams p99 latency: bare http SSE`, 'ms', bareP99));
  ratios.push(
    ratio(
      `SSE ${n} streams: delivered tokens/s vs bare`,
      rateRatio,
      0.8,
      true,
      'bare http SSE, one write per tick',
    ),
  );
  ratios.push(
    ratio(
      `SSE ${n} streams: p99 latency vs bare (at most)`,
      p99Ratio,
      1.5,
      false,
      'bare http SSE, one write per tick',
    ),
  );
}
report({
  section: 'sse',
  figures,
  ratios,
  notes: [`${REPS} repetitions, alternating order; readers in a second process`],
});
