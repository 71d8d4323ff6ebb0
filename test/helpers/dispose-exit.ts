/**
 * Run as a process of its own (see test/redis/dispose-exit.test.ts): a registry on the Redis at
 * REDIS_URL (or on the cluster at REDIS_CLUSTER_NODES when CLUSTER=1, with a `Cluster` it closes itself)
 * writes a job, a reader elsewhere tails it, both are disposed; prints how long the process lived on
 * after the last dispose() resolved.
 */
import { Cluster } from 'ioredis';
import { JobRegistry } from '../../src/core/index.js';
import { redisBackend, type RedisBackendOptions } from '../../src/redis/index.js';

const prefix = process.env.REDIS_PREFIX!;
const cluster =
  process.env.CLUSTER === '1'
    ? new Cluster(
        process.env.REDIS_CLUSTER_NODES!.split(',').map((n) => {
          const [host, port] = n.split(':');
          return { host: host!, port: Number(port) };
        }),
      )
    : undefined;
const where: Pick<RedisBackendOptions, 'url' | 'redis'> =
  cluster !== undefined ? { redis: cluster } : { url: process.env.REDIS_URL! };
const make = (): JobRegistry<string> =>
  new JobRegistry<string>({ backend: redisBackend({ ...where, prefix, leaseMs: 2000, blockMs: 1000 }) });

// UNREACHABLE=1: one registry on a port nothing listens on, disposed once its start failed (its
// connections between two reconnect attempts, their sockets closed).
if (process.env.UNREACHABLE === '1') {
  const r = new JobRegistry<string>({
    backend: redisBackend({ url: 'redis://127.0.0.1:1/0', prefix }),
  });
  const failed = await r.ready().then(
    () => false,
    () => true,
  );
  await r.dispose();
  report(failed ? ['refused'] : []);
} else {
  const a = make();
  const b = make();
  await Promise.all([a.ready(), b.ready()]);
  // AT_ONCE=1: disposed as soon as ready, their connections (a cluster's first connections to the nodes
  // their blocking reads go to) in the middle of their handshakes.
  const got = process.env.AT_ONCE === '1' ? [] : await writeAndRead(a, b);
  await Promise.all([a.dispose(), b.dispose()]);
  await cluster?.quit();
  report(got);
}

/** Prints, as the process exits, what was read and how long the process lived on from now. */
function report(tokens: string[]): void {
  const disposed = performance.now();
  process.on('exit', () => {
    process.stdout.write(
      `${JSON.stringify({ tokens, livedOnMs: Math.round(performance.now() - disposed) })}\n`,
    );
  });
}
/** A job written by `a`, read by `b`. */
async function writeAndRead(a: JobRegistry<string>, b: JobRegistry<string>): Promise<string[]> {
  const id = a.createJob();
  await a.flush();
  const read = new Promise<string[]>((resolve, reject) => {
    const got: string[] = [];
    b.tokens$(id).subscribe({
      next: (t) => got.push(t.token),
      error: reject,
      complete: () => resolve(got),
    });
  });
  a.emit(id, 'one');
  a.emit(id, 'two');
  a.updateState(id, 'completed');
  return read;
}
