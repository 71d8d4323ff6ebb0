/**
 * Redis: token throughput from a producer process to a reader process through each system, side by side
 * against the same Redis, and Redis commands per token (from INFO commandstats).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { QUICK, figure, ratio, report, type Figure, type Ratio, redisAdminOrSkip } from '../lib.js';
import { waitFor, peerArgs } from '../ipc.js';

const REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const K = QUICK ? 5_000 : 50_000;
const BATCH = 50;
const REPS = QUICK ? 2 : 7;
const SYSTEMS = ['ours', 'bare', 'resumable'] as const;
const peer = new URL('../redis-peer.ts', import.meta.url).pathname;

async function commands(admin: Redis): Promise<number> {
  const info = await admin.info('commandstats');
  let total = 0;
  for (const m of info.matchAll(/calls=(\d+)/g)) total += Number(m[1]);
  return total;
}

async function run(
  system: (typeof SYSTEMS)[number],
  admin: Redis,
): Promise<{ rate: number; perToken: number }> {
  const prefix = `jrbench:${process.pid}:${system}:${Math.random().toString(36).slice(2, 8)}:`;
  const spawn = (role: string): ChildProcess =>
    fork(peer, [role, system, REDIS, prefix], { execArgv: peerArgs(['--import', 'tsx']), stdio: 'inherit' });
  const producer = spawn('producer');
  const reader = spawn('reader');
  // resumable-stream can stall under load (an ack that never comes): a run past its deadline is failed.
  const deadline = setTimeout(
    () => {
      producer.kill('SIGKILL');
      reader.kill('SIGKILL');
    },
    QUICK ? 30_000 : 120_000,
  );
  try {
    return await measure(system, admin, prefix, producer, reader);
  } finally {
    clearTimeout(deadline);
    producer.kill('SIGKILL');
    reader.kill('SIGKILL');
  }
}

async function measure(
  system: (typeof SYSTEMS)[number],
  admin: Redis,
  prefix: string,
  producer: ChildProcess,
  reader: ChildProcess,
): Promise<{ rate: number; perToken: number }> {
  await Promise.all([waitFor(producer, 'up'), waitFor(reader, 'up')]);
  const idMsg = waitFor<{ id: string }>(producer, 'id');
  producer.send({ type: 'start', k: K, batch: BATCH, id: `job-bench-${system}` });
  const { id } = await idMsg;
  const ready = waitFor(reader, 'ready');
  reader.send({ type: 'read', id, k: K });
  await ready;
  await new Promise((r) => setTimeout(r, 100));
  const before = await commands(admin);
  const result = waitFor<{ tokens: number; seconds: number }>(reader, 'result');
  producer.send({ type: 'go' });
  const r = await result;
  await waitFor(producer, 'sent').catch(() => undefined);
  const after = await commands(admin);
  producer.send({ type: 'stop' });
  reader.send({ type: 'stop' });
  await Promise.all([
    new Promise((res) => producer.once('exit', res)),
    new Promise((res) => reader.once('exit', res)),
  ]);
  const keys = await admin.keys(`${prefix}*`);
  if (keys.length > 0) await admin.del(...keys);
  if (r.tokens !== K) throw new Error(`${system}: reader got ${r.tokens} of ${K}`);
  return { rate: r.tokens / r.seconds, perToken: (after - before - 1) / K };
}

// resumable-stream waits 1 s for an ack between its processes and gives up on a loaded machine: its
// runs are retried, and a run that still fails is noted instead of failing the benchmark.
const failures: string[] = [];
async function attempt(
  system: (typeof SYSTEMS)[number],
  admin: Redis,
): Promise<{ rate: number; perToken: number } | undefined> {
  for (let i = 1; ; i++) {
    try {
      return await run(system, admin);
    } catch (e) {
      if (system !== 'resumable') throw e;
      failures.push(`${system} run failed (try ${i}): ${(e as Error).message.split('\n')[0]}`);
      if (i === 3) return undefined;
    }
  }
}

const admin = await redisAdminOrSkip(REDIS, 'redis', 'Redis');
const rates: Record<string, number[]> = { ours: [], bare: [], resumable: [] };
const perToken: Record<string, number[]> = { ours: [], bare: [], resumable: [] };
const vsBare: number[] = [];
const vsResumable: number[] = [];
for (let rep = 0; rep < REPS; rep++) {
  const order = rep % 2 === 0 ? SYSTEMS : [...SYSTEMS].reverse();
  const got: Record<string, number> = {};
  for (const s of order) {
    const r = await attempt(s, admin);
    if (r === undefined) continue;
    got[s] = r.rate;
    rates[s]!.push(r.rate);
    perToken[s]!.push(r.perToken);
  }
  vsBare.push(got.ours! / got.bare!);
  if (got.resumable !== undefined) vsResumable.push(got.ours! / got.resumable);
}
admin.disconnect();
const figures: Figure[] = [];
const names = {
  ours: 'job-registry redisBackend',
  bare: 'bare ioredis pipelined XADD / XREAD BLOCK',
  resumable: 'resumable-stream, one token per chunk',
};
for (const s of SYSTEMS) {
  if (rates[s]!.length === 0) continue;
  figures.push(figure(`Redis ${K} tokens producer -> reader: ${names[s]}`, 'tokens/s', rates[s]!));
  figures.push(figure(`Redis commands per token: ${names[s]}`, 'commands/token', perToken[s]!));
}
const ratios: Ratio[] = [ratio('Redis throughput vs bare ioredis', vsBare, 0.8, true, names.bare)];
if (vsResumable.length > 0)
  ratios.unshift(ratio('Redis throughput vs resumable-stream', vsResumable, 4, true, names.resumable));
report({
  section: 'redis',
  figures,
  ratios,
  notes: [
    `${REPS} repetitions, order alternating; ${BATCH} tokens per producer tick; each side in its own process`,
  ],
});
