/**
 * Redis, realistic load: 1,000 concurrent jobs each emitting one short token every 20 ms for 20 s (quick:
 * 100 jobs for 3 s), the producer in one process and a reader of every job in another. For each system,
 * the CPU time of both processes per 1,000 tokens delivered, and the emit-to-delivery latency (p50, p99)
 * measured across the processes. The reader checks that every job's tokens arrived complete and in order.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { Redis } from 'ioredis';
import { QUICK, figure, ratio, report, type Figure, redisAdminOrSkip } from '../lib.js';
import { waitFor, peerArgs } from '../ipc.js';

const REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const JOBS = QUICK ? 100 : 1000;
const INTERVAL_MS = 20;
const SECONDS = QUICK ? 3 : 20;
const TICKS = (SECONDS * 1000) / INTERVAL_MS;
const REPS = QUICK ? 1 : 3;
/** A run that has not finished by then (tokens lost, a reader that never ends) fails instead of hanging. */
const DEADLINE_MS = SECONDS * 3_000 + 60_000;
const SYSTEMS = ['ours', 'bare'] as const;
type System = (typeof SYSTEMS)[number];
const peer = new URL('../redis-realistic-peer.ts', import.meta.url).pathname;
// JR_BENCH_CPU_PROF=<dir> (passed on to the peers): CPU profiles of each run's measured window, for
// finding hot spots. Profiling slows the runs: figures of such a run are not comparable.
const PROF = process.env.JR_BENCH_CPU_PROF;
if (PROF !== undefined) mkdirSync(PROF, { recursive: true });

async function redisCpuMs(admin: Redis): Promise<number> {
  const info = await admin.info('cpu');
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1]);
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1]);
  return (user + sys) * 1000;
}

/** XREAD calls Redis has served so far (INFO commandstats). */
async function xreadCalls(admin: Redis): Promise<number> {
  const info = await admin.info('commandstats');
  return Number(/cmdstat_xread:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

async function removeKeys(admin: Redis, prefix: string): Promise<void> {
  const keys = await admin.keys(`${prefix}*`);
  for (let i = 0; i < keys.length; i += 500) await admin.del(...keys.slice(i, i + 500));
}

interface Run {
  cpuPer1k: number;
  p50: number;
  p99: number;
  max: number;
  redisCpuPer1k: number;
  /** XREAD calls Redis served during the run, per 1,000 tokens. */
  xreadsPer1k: number;
  late: number;
  seconds: number;
}

async function run(system: System, admin: Redis): Promise<Run> {
  const prefix = `jrbench:${process.pid}:rt:${system}:${Math.random().toString(36).slice(2, 8)}:`;
  const spawn = (role: string): ChildProcess =>
    fork(peer, [role, system, REDIS, prefix], {
      execArgv: peerArgs(['--import', 'tsx']),
      stdio: 'inherit',
    });
  const producer = spawn('producer');
  const reader = spawn('reader');
  let timedOut = false;
  const deadline = setTimeout(() => {
    timedOut = true;
    producer.kill('SIGKILL');
    reader.kill('SIGKILL');
  }, DEADLINE_MS);
  try {
    await Promise.all([waitFor(producer, 'up'), waitFor(reader, 'up')]);
    const idsMsg = waitFor<{ ids: string[] }>(producer, 'ids');
    producer.send({ type: 'start', jobs: JOBS, ticks: TICKS, intervalMs: INTERVAL_MS });
    const { ids } = await idsMsg;
    const ready = waitFor(reader, 'ready');
    reader.send({ type: 'read', ids, ticks: TICKS });
    await ready;
    // Let the reader's subscriptions settle (replay done, joined the live tail) before the clock starts.
    await new Promise((r) => setTimeout(r, QUICK ? 300 : 1000));
    const redisBefore = await redisCpuMs(admin);
    const xreadsBefore = await xreadCalls(admin);
    const result = waitFor<{
      tokens: number;
      cpuMs: number;
      p50: number;
      p99: number;
      max: number;
      problems: string[];
    }>(reader, 'result');
    const sent = waitFor<{ cpuMs: number; late: number; seconds: number }>(producer, 'sent');
    producer.send({ type: 'go' });
    reader.send({ type: 'go' });
    const [r, s] = await Promise.all([result, sent]);
    const redisAfter = await redisCpuMs(admin);
    const xreadsAfter = await xreadCalls(admin);
    const expected = JOBS * TICKS;
    if (r.problems.length > 0 || r.tokens !== expected)
      throw new Error(
        `redis-realistic ${system}: the reader got ${r.tokens} of ${expected} tokens` +
          (r.problems.length > 0 ? `; first problems:\n  ${r.problems.join('\n  ')}` : ''),
      );
    producer.send({ type: 'stop' });
    reader.send({ type: 'stop' });
    await Promise.all([
      new Promise((res) => producer.once('exit', res)),
      new Promise((res) => reader.once('exit', res)),
    ]);
    const k = r.tokens / 1000;
    return {
      cpuPer1k: (s.cpuMs + r.cpuMs) / k,
      p50: r.p50,
      p99: r.p99,
      max: r.max,
      redisCpuPer1k: (redisAfter - redisBefore) / k,
      xreadsPer1k: (xreadsAfter - xreadsBefore) / k,
      late: s.late,
      seconds: s.seconds,
    };
  } catch (e) {
    if (!timedOut) throw e;
    throw new Error(`redis-realistic ${system}: no result within ${DEADLINE_MS / 1000} s; peers killed`, {
      cause: e,
    });
  } finally {
    clearTimeout(deadline);
    producer.kill('SIGKILL');
    reader.kill('SIGKILL');
    await removeKeys(admin, prefix);
  }
}

const admin = await redisAdminOrSkip(REDIS, 'redis-realistic', 'realistic Redis');

const runs: Record<System, Run[]> = { ours: [], bare: [] };
const cpuPairs: number[] = [];
const p99Pairs: number[] = [];
const p50Pairs: number[] = [];
for (let rep = 0; rep < REPS; rep++) {
  const order = rep % 2 === 0 ? SYSTEMS : [...SYSTEMS].reverse();
  const got: Partial<Record<System, Run>> = {};
  for (const s of order) {
    const r = await run(s, admin);
    got[s] = r;
    runs[s].push(r);
  }
  cpuPairs.push(got.ours!.cpuPer1k / got.bare!.cpuPer1k);
  p99Pairs.push(got.ours!.p99 / got.bare!.p99);
  p50Pairs.push(got.ours!.p50 / got.bare!.p50);
}
admin.disconnect();

const names: Record<System, string> = {
  ours: 'job-registry redisBackend',
  bare: 'bare ioredis pipelined XADD / XREAD BLOCK',
};
const load = `${JOBS} jobs x 1 token / ${INTERVAL_MS} ms`;
const figures: Figure[] = [];
for (const s of SYSTEMS) {
  const rs = runs[s];
  figures.push(
    figure(
      `${load}: CPU of producer + reader per 1,000 tokens: ${names[s]}`,
      'ms',
      rs.map((r) => r.cpuPer1k),
    ),
    figure(
      `${load}: p50 latency emit -> delivery: ${names[s]}`,
      'ms',
      rs.map((r) => r.p50),
    ),
    figure(
      `${load}: p99 latency emit -> delivery: ${names[s]}`,
      'ms',
      rs.map((r) => r.p99),
    ),
    figure(
      `${load}: Redis server CPU per 1,000 tokens: ${names[s]}`,
      'ms',
      rs.map((r) => r.redisCpuPer1k),
    ),
  );
}
const perRun = (f: (r: Run) => string): string =>
  SYSTEMS.map((s) => `${s} ${runs[s].map(f).join('/')}`).join(', ');
report({
  section: 'redis-realistic',
  figures,
  ratios: [
    ratio(`${load}: CPU per 1,000 tokens vs bare (at most)`, cpuPairs, 1.0, false, names.bare),
    ratio(`${load}: p99 latency vs bare (at most)`, p99Pairs, 1.3, false, names.bare),
    ratio(`${load}: p50 latency vs bare (at most)`, p50Pairs, 1.2, false, names.bare),
  ],
  notes: [
    `${JOBS} jobs, ${TICKS} ticks of ${INTERVAL_MS} ms (${SECONDS} s), ${REPS} repetition(s), order alternating; producer and reader in their own processes; every job checked complete and in order`,
    `CPU is process.cpuUsage (user + system) of producer + reader from start to the last delivery; Redis server CPU from INFO cpu, for context only`,
    `per run: max latency (ms) ${perRun((r) => r.max.toFixed(0))}; XREAD calls per 1,000 tokens ${perRun((r) => r.xreadsPer1k.toFixed(1))}; producer seconds for the ${SECONDS} s schedule ${perRun((r) => r.seconds.toFixed(1))}; ticks more than one interval late ${perRun((r) => String(r.late))}`,
    `jobs are created and set running before the clock starts; load average at the end ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} on ${cpus().length} cores`,
  ],
});
