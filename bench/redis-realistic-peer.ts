/**
 * One side (producer or reader) of the realistic Redis benchmark, in its own process. N jobs each emit one
 * short string token every `intervalMs` for `ticks` ticks; the token carries its tick and the producer's
 * clock (`<tick>|<ms>`), so the reader checks order and completeness and measures emit-to-delivery latency.
 * Systems:
 * - ours: JobRegistry with redisBackend (one tokens$ subscription per job on the reader);
 * - bare: ioredis, per tick one pipeline of XADDs (explicit ids `0-<tick+1>`, one stream per job), an end
 *   entry per stream at the end; the reader one XREAD BLOCK loop over every stream with its last id.
 * Each side reports its CPU time (process.cpuUsage, user + system) from `go` to its end.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { Redis } from 'ioredis';
import { JobRegistry } from '../src/core/index.js';
import { redisBackend } from '../src/redis/index.js';
import { once, runPeer, send } from './ipc.js';

const [role, system, url, prefix] = process.argv.slice(2) as [string, string, string, string];
const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const cpuMs = (since: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
};
// JR_BENCH_CPU_PROF=<dir>: a V8 CPU profile of the measured window (from `go` to the end), written to
// <dir>/<system>-<role>-<pid>.cpuprofile.
const PROF = process.env.JR_BENCH_CPU_PROF;
let session: Session | undefined;
async function profileStart(): Promise<void> {
  if (PROF === undefined) return;
  session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
}
async function profileStop(): Promise<void> {
  if (session === undefined) return;
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(`${PROF}/${system}-${role}-${process.pid}.cpuprofile`, JSON.stringify(profile));
  session.disconnect();
}
/** Reader stream COUNT, the same as the registry's tailer uses. */
const COUNT = 1000;

interface Start {
  jobs: number;
  ticks: number;
  intervalMs: number;
}

async function producer(): Promise<void> {
  const { jobs, ticks, intervalMs } = await once<Start>('start');
  let emitTick: (tick: number) => void;
  let finish: () => Promise<void>;
  let close: () => Promise<void>;
  let ids: string[];
  if (system === 'ours') {
    const r = new JobRegistry<string>({ backend: redisBackend({ url, prefix }) });
    await r.ready();
    ids = Array.from({ length: jobs }, () => r.createJob());
    // Jobs start (queued -> running) before the clock: all of them starting in the same tick is not
    // steady streaming, and bare has no such step.
    for (const id of ids) r.updateState(id, 'running');
    await r.flush();
    emitTick = (tick) => {
      for (const id of ids) r.emit(id, `${tick}|${now()}`);
    };
    finish = async () => {
      for (const id of ids) r.updateState(id, 'completed');
      await r.flush();
    };
    close = () => r.dispose();
  } else {
    const redis = new Redis(url);
    ids = Array.from({ length: jobs }, (_, i) => `job-${i}`);
    const keys = ids.map((id) => `${prefix}bare:${id}`);
    let inflight: Promise<unknown> = Promise.resolve();
    emitTick = (tick) => {
      const p = redis.pipeline();
      const entry = `0-${tick + 1}`;
      for (const key of keys) p.xadd(key, entry, 't', `${tick}|${now()}`);
      inflight = p.exec();
    };
    finish = async () => {
      const p = redis.pipeline();
      for (const key of keys) p.xadd(key, '*', 'end', 'completed');
      await inflight;
      await p.exec();
    };
    close = async () => void redis.disconnect();
  }
  send({ type: 'ids', ids });
  await once('go');
  await profileStart();
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  let late = 0;
  for (let tick = 0; tick < ticks; tick++) {
    const wait = t0 + tick * intervalMs - performance.now();
    // A late tick still yields first, so each tick's writes go out as their own batch.
    if (wait > 0) await sleep(wait);
    else {
      if (wait < -intervalMs) late++;
      await new Promise((r) => setImmediate(r));
    }
    emitTick(tick);
  }
  await finish();
  const spent = cpuMs(cpu);
  await profileStop();
  send({ type: 'sent', cpuMs: spent, seconds: (performance.now() - t0) / 1000, late });
  await once('stop');
  await close();
  process.exit(0);
}

async function reader(): Promise<void> {
  const { ids, ticks } = await once<{ ids: string[]; ticks: number }>('read');
  const jobs = ids.length;
  const latencies = new Float64Array(jobs * ticks);
  let n = 0;
  const next = new Int32Array(jobs);
  const problems: string[] = [];
  const problem = (text: string): void => void (problems.length < 10 && problems.push(text));
  // The same check on both systems: the seq must follow the last one, and the token carry that tick.
  const deliver = (job: number, seq: number, token: string): void => {
    const at = now();
    const bar = token.indexOf('|');
    const tick = Number(token.slice(0, bar));
    if (seq !== next[job] || tick !== seq)
      problem(`${ids[job]}: expected seq ${next[job]}, got seq ${seq} carrying tick ${tick}`);
    next[job] = seq + 1;
    latencies[n++] = at - Number(token.slice(bar + 1));
  };
  let left = jobs;
  let cpu = process.cpuUsage();
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  const ended = (): void => {
    if (--left === 0) done();
  };
  let close: () => Promise<void>;
  if (system === 'ours') {
    const r = new JobRegistry<string>({ backend: redisBackend({ url, prefix }) });
    await r.ready();
    ids.forEach((id, job) =>
      r.tokens$(id).subscribe({
        next: (e) => deliver(job, e.seq, e.token),
        complete: ended,
        error: (e: Error) => {
          problem(`${id}: ${e.message}`);
          ended();
        },
      }),
    );
    close = () => r.dispose();
  } else {
    const redis = new Redis(url);
    const keys = ids.map((id) => `${prefix}bare:${id}`);
    const index = new Map(keys.map((k, i) => [k, i]));
    const cursors = keys.map(() => '0-0');
    let active = ids.map((_, i) => i);
    void (async () => {
      while (active.length > 0) {
        const args: Array<string | number> = ['COUNT', COUNT, 'BLOCK', 5000, 'STREAMS'];
        for (const i of active) args.push(keys[i]!);
        for (const i of active) args.push(cursors[i]!);
        const res = (await redis.call('XREAD', args)) as Array<[string, Array<[string, string[]]>]> | null;
        if (res === null) continue;
        let finished = false;
        for (const [key, entries] of res) {
          const job = index.get(key)!;
          for (const [id, fields] of entries) {
            cursors[job] = id;
            if (fields[0] === 't') deliver(job, Number(id.slice(2)) - 1, fields[1]!);
            else {
              finished = true;
              cursors[job] = '';
              ended();
            }
          }
        }
        if (finished) active = active.filter((i) => cursors[i] !== '');
      }
    })().catch((e: unknown) => send({ type: 'error', message: (e as Error).stack ?? String(e) }));
    close = async () => void redis.disconnect();
  }
  send({ type: 'ready' });
  await once('go');
  await profileStart();
  cpu = process.cpuUsage();
  await all;
  const spent = cpuMs(cpu);
  await profileStop();
  for (let j = 0; j < jobs; j++)
    if (next[j] !== ticks) problem(`${ids[j]}: ended after ${next[j]} of ${ticks} tokens`);
  const sorted = latencies.subarray(0, n).sort();
  const at = (q: number): number => sorted[Math.min(n - 1, Math.floor(q * n))] ?? NaN;
  send({
    type: 'result',
    tokens: n,
    cpuMs: spent,
    p50: at(0.5),
    p99: at(0.99),
    max: n > 0 ? sorted[n - 1] : NaN,
    problems,
  });
  await once('stop');
  await close();
  process.exit(0);
}

runPeer(role === 'producer' ? producer : reader);
