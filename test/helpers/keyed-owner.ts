/**
 * A process that holds one keyed job and runs it until it is killed: the owner that dies in the keyed-job
 * suites (test/helpers/keyed.ts). Prints `job <id>` once the job holds its key in Redis.
 *
 * Env: KEYED_PREFIX, KEYED_KEY, KEYED_LEASE_MS, and REDIS_URL or KEYED_CLUSTER_NODES (`host:port,...`).
 */
import { Cluster } from 'ioredis';
import { NEVER } from 'rxjs';
import { JobRegistry } from '../../src/core/index.js';
import { redisBackend } from '../../src/redis/index.js';

const env = process.env;
const nodes = env.KEYED_CLUSTER_NODES;
const store = nodes
  ? {
      redis: new Cluster(
        nodes.split(',').map((n) => ({ host: n.split(':')[0]!, port: Number(n.split(':')[1]) })),
      ),
    }
  : { url: env.REDIS_URL ?? 'redis://127.0.0.1:6379' };
const registry = new JobRegistry<string>({
  backend: redisBackend({ ...store, prefix: env.KEYED_PREFIX!, leaseMs: Number(env.KEYED_LEASE_MS) }),
});
await registry.ready();
const id = registry.createJob({ key: env.KEYED_KEY! });
registry.executeAndStream(id, () => NEVER).subscribe({ error: () => undefined });
await registry.claimed(id);
console.log(`job ${id}`);
