/**
 * Keyed jobs on a Redis Cluster of three masters: the key record and the job's keys share one slot, so
 * the claim is atomic there too (see test/helpers/keyed.ts).
 */
import type { Cluster } from 'ioredis';
import { JobRegistry } from '../../src/core/index.js';
import { Keys, redisBackend } from '../../src/redis/index.js';
import { clusterClient, clusterNodes, dropClusterPrefix } from '../helpers/cluster.js';
import { describeIf } from '../helpers/collect.js';
import { keyedContract, recorder } from '../helpers/keyed.js';
import { testPrefix } from '../helpers/redis.js';

const cluster = await clusterNodes();
const prefix = testPrefix('keys-cluster');
const LEASE_MS = 2000;

describeIf(cluster !== undefined)('redis backend on Redis Cluster: keyed jobs', () => {
  const clients: Cluster[] = [];
  const client = (): Cluster => {
    const c = clusterClient(cluster!.nodes);
    clients.push(c);
    return c;
  };
  const admin = client();
  afterAll(async () => {
    await dropClusterPrefix(cluster!.nodes, prefix);
    for (const c of clients) c.disconnect();
    await cluster!.stop();
  }, 30_000);

  test("a keyed job's keys and its key record share one slot", async () => {
    const r = new JobRegistry<string>({ backend: redisBackend({ redis: client(), prefix }) });
    const keys = new Keys(prefix, 8);
    try {
      await r.ready();
      for (let i = 0; i < 20; i++) {
        const key = `slot-${i}`;
        const id = r.createJob({ key });
        await r.claimed(id);
        const slot = await admin.cluster('KEYSLOT', keys.keyRecord(key));
        expect(await admin.cluster('KEYSLOT', keys.meta(id))).toBe(slot);
        expect(await admin.cluster('KEYSLOT', keys.tokens(id))).toBe(slot);
      }
    } finally {
      await r.dispose();
    }
  });

  keyedContract('Redis Cluster', () => ({
    make: (options = {}, logger = recorder()) =>
      new JobRegistry<string>({
        ...options,
        backend: redisBackend({ redis: client(), prefix, leaseMs: LEASE_MS, logger }),
      }),
    keys: new Keys(prefix, 8),
    admin,
    leaseMs: LEASE_MS,
    ownerEnv: {
      KEYED_CLUSTER_NODES: cluster!.nodes.map((n) => `${n.host}:${n.port}`).join(','),
      KEYED_PREFIX: prefix,
      KEYED_LEASE_MS: String(LEASE_MS),
    },
  }));
});
