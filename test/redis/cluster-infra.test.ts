import type { Cluster } from 'ioredis';
import { clusterClient, clusterNodes, dropClusterPrefix, startPrivateCluster } from '../helpers/cluster.js';
import { describeIf } from '../helpers/collect.js';
import { testPrefix } from '../helpers/redis.js';

// The local Redis Cluster infrastructure itself: REDIS_CLUSTER_NODES (CI), else a private cluster.
const cluster = await clusterNodes();
afterAll(() => cluster?.stop());
const prefix = testPrefix('cluster-infra');

interface SlotRange {
  start: number;
  end: number;
  master: string;
}

async function slotRanges(client: Cluster): Promise<SlotRange[]> {
  const slots = await client.cluster('SLOTS');
  return slots.map(([start, end, [host, port]]) => ({ start, end, master: `${host}:${port}` }));
}

function ownerOf(ranges: readonly SlotRange[], slot: number): string {
  const range = ranges.find((r) => r.start <= slot && slot <= r.end);
  if (range === undefined) throw new Error(`slot ${slot} has no owner`);
  return range.master;
}

describeIf(cluster !== undefined)('local Redis Cluster', () => {
  const nodes = cluster?.nodes ?? [];
  let client: Cluster;

  beforeAll(async () => {
    client = clusterClient(nodes);
    await client.connect();
  });
  afterAll(async () => {
    await dropClusterPrefix(nodes, prefix);
    await client?.quit();
  });

  it('has three masters that together own all 16384 slots once, each with a replica', async () => {
    const ranges = (await slotRanges(client)).sort((a, b) => a.start - b.start);
    expect(new Set(ranges.map((r) => r.master)).size).toBe(3);
    let next = 0;
    for (const r of ranges) {
      expect(r.start).toBe(next);
      next = r.end + 1;
    }
    expect(next).toBe(16384);

    // CLUSTER SLOTS lists a replica only once its replication offset is non-zero, that is after the
    // first write on its master, so the replicas are checked in CLUSTER NODES:
    // <id> <host:port@bus> <flags> <master id or -> <ping> <pong> <epoch> <link> <slots...>
    const lines = ((await client.cluster('NODES')) as string)
      .trim()
      .split('\n')
      .map((line) => line.trim().split(' '));
    expect(lines.filter(([, , flags]) => /fail|handshake|noaddr/.test(flags!))).toEqual([]);
    const masters = lines.filter(([, , flags]) => flags!.includes('master'));
    const replicas = lines.filter(([, , flags]) => flags!.includes('slave'));
    expect(masters).toHaveLength(3);
    expect(masters.every((fields) => fields.length > 8)).toBe(true);
    expect(replicas.map(([, , , masterId]) => masterId).sort()).toEqual(masters.map(([id]) => id).sort());
  });

  it('REDIS_CLUSTER_REPLICAS=0 starts three masters that own every slot, and no replica', async () => {
    const bare = await startPrivateCluster(0);
    const c = clusterClient(bare.nodes);
    try {
      expect(bare.nodes).toHaveLength(3);
      await c.connect();
      const ranges = await slotRanges(c);
      expect(new Set(ranges.map((r) => r.master)).size).toBe(3);
      expect(ranges.reduce((n, r) => n + r.end - r.start + 1, 0)).toBe(16384);
      const flags = ((await c.cluster('NODES')) as string)
        .trim()
        .split('\n')
        .map((line) => line.trim().split(' ')[2]!);
      expect(flags.filter((f) => f.includes('master'))).toHaveLength(3);
      expect(flags.filter((f) => f.includes('slave'))).toEqual([]);
    } finally {
      c.disconnect();
      await bare.stop();
    }
  }, 120_000);

  it('stores keys on different masters, reads them back, and drops them by prefix', async () => {
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'].map((tag) => `${prefix}{${tag}}x`);
    const ranges = await slotRanges(client);
    const owners = await Promise.all(
      keys.map(async (key) => ownerOf(ranges, await client.cluster('KEYSLOT', key))),
    );
    expect(new Set(owners).size).toBeGreaterThanOrEqual(2);

    await Promise.all(keys.map((key, i) => client.set(key, `value ${i}`)));
    expect(await Promise.all(keys.map((key) => client.get(key)))).toEqual(keys.map((_, i) => `value ${i}`));

    // Each key really lives on the master that owns its slot: a direct read there gets no MOVED.
    const masters = client.nodes('master');
    for (const [i, key] of keys.entries()) {
      const node = masters.find((m) => `${m.options.host}:${m.options.port}` === owners[i]);
      expect(node).toBeDefined();
      expect(await node!.get(key)).toBe(`value ${i}`);
    }

    expect(await dropClusterPrefix(nodes, prefix)).toBe(keys.length);
    expect(await Promise.all(keys.map((key) => client.exists(key)))).toEqual(keys.map(() => 0));
  });
});
