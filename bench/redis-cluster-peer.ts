/**
 * One side (producer or reader) of the Redis Cluster throughput benchmark, in its own process: a
 * JobRegistry with redisBackend on a single Redis (`single <url>`) or on a Redis Cluster
 * (`cluster <host:port,...>`). The producer creates its jobs, then emits `batch` tokens per job per tick
 * (a tick per setImmediate) until each job has `perJob` tokens, and completes them. The reader follows
 * every job of its producer, checks each job's tokens are complete and in order, and reports when its
 * first token and its last job's end arrived (wall clock, comparable across processes).
 */
import { Cluster } from 'ioredis';
import { JobRegistry } from '../src/core/index.js';
import { redisBackend } from '../src/redis/index.js';
import { once, runPeer, send } from './ipc.js';

const [role, mode, target, prefix, shards] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const now = (): number => performance.timeOrigin + performance.now();
const cpuMs = (since: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
};

function registry(): { r: JobRegistry<string>; close: () => Promise<void> } {
  if (mode === 'single') {
    const r = new JobRegistry<string>({
      backend: redisBackend({ url: target, prefix, shards: Number(shards) }),
    });
    return { r, close: () => r.dispose() };
  }
  const nodes = target.split(',').map((hp) => {
    const [host, port] = hp.split(':');
    return { host: host!, port: Number(port) };
  });
  const cluster = new Cluster(nodes, { redisOptions: { connectTimeout: 5000 } });
  const r = new JobRegistry<string>({
    backend: redisBackend({ redis: cluster, prefix, shards: Number(shards) }),
  });
  return {
    r,
    close: async () => {
      await r.dispose();
      cluster.disconnect();
    },
  };
}

async function producer(): Promise<void> {
  const { jobs, perJob, batch } = await once<{ jobs: number; perJob: number; batch: number }>('start');
  const { r, close } = registry();
  await r.ready();
  const ids = Array.from({ length: jobs }, () => r.createJob());
  await r.flush();
  send({ type: 'ids', ids });
  await once('go');
  const cpu = process.cpuUsage();
  const t0 = now();
  for (let i = 0; i < perJob;) {
    const end = Math.min(perJob, i + batch);
    for (const id of ids) for (let k = i; k < end; k++) r.emit(id, `tok${k}`);
    i = end;
    await tick();
  }
  for (const id of ids) r.updateState(id, 'completed');
  await r.flush();
  send({ type: 'sent', seconds: (now() - t0) / 1000, cpuMs: cpuMs(cpu) });
  await once('stop');
  await close();
  process.exit(0);
}

async function reader(): Promise<void> {
  const { ids, perJob } = await once<{ ids: string[]; perJob: number }>('read');
  const { r, close } = registry();
  await r.ready();
  let first = 0;
  let count = 0;
  let left = ids.length;
  const problems: string[] = [];
  const problem = (text: string): void => void (problems.length < 10 && problems.push(text));
  let cpu = process.cpuUsage();
  const finish = (): void => {
    const last = now();
    const spent = cpuMs(cpu);
    for (const c of got) if (c !== perJob) problem(`a job ended after ${c} of ${perJob} tokens`);
    send({ type: 'result', tokens: count, first, last, cpuMs: spent, problems });
  };
  const got = new Int32Array(ids.length);
  ids.forEach((id, job) =>
    r.tokens$(id).subscribe({
      next: ({ seq, token }) => {
        if (count++ === 0) first = now();
        if (seq !== got[job] || token !== `tok${seq}`)
          problem(`${id}: expected seq ${got[job]}, got seq ${seq} with ${token}`);
        got[job] = seq + 1;
      },
      complete: () => {
        if (--left === 0) finish();
      },
      error: (e: Error) => {
        problem(`${id}: ${e.message}`);
        if (--left === 0) finish();
      },
    }),
  );
  send({ type: 'ready' });
  await once('go');
  cpu = process.cpuUsage();
  await once('stop');
  await close();
  process.exit(0);
}

runPeer(role === 'producer' ? producer : reader);
