/**
 * The Redis backend on a real Redis Cluster of three masters: the registry contract with two registries
 * as two processes would be, jobs spread over every master, and example servers sharing the cluster.
 */
import type { Cluster } from 'ioredis';
import { JobRegistry } from '../../src/core/index.js';
import { Keys, redisBackend } from '../../src/redis/index.js';
import { collect, describeIf, waitFor } from '../helpers/collect.js';
import { clusterClient, clusterNodes, dropClusterPrefix } from '../helpers/cluster.js';
import { registryContract } from '../helpers/contract.js';
import { http, parseSse, postJson } from '../helpers/http.js';
import { spawnServer, type ServerProcess } from '../helpers/processes.js';
import { testPrefix } from '../helpers/redis.js';

const cluster = await clusterNodes();
const prefix = testPrefix('cluster');

describeIf(cluster !== undefined)('redis backend on Redis Cluster', () => {
  const clients: Cluster[] = [];
  const client = (): Cluster => {
    const c = clusterClient(cluster!.nodes);
    clients.push(c);
    return c;
  };
  afterAll(async () => {
    await dropClusterPrefix(cluster!.nodes, prefix);
    for (const c of clients) c.disconnect();
    await cluster!.stop();
  }, 30_000);

  registryContract('redis cluster, two registries', async (options) => {
    const make = () =>
      new JobRegistry<string>({
        ...options,
        backend: redisBackend({ redis: client(), prefix, leaseMs: 2000 }),
      });
    const a = make();
    const b = make();
    await Promise.all([a.ready(), b.ready()]);
    return { a, b, close: async () => void (await Promise.all([a.dispose(), b.dispose()])) };
  });

  test('jobs, their events and the job index spread over every master', async () => {
    const a = new JobRegistry<string>({ backend: redisBackend({ redis: client(), prefix }) });
    const b = new JobRegistry<string>({ backend: redisBackend({ redis: client(), prefix }) });
    await Promise.all([a.ready(), b.ready()]);
    const ids = Array.from({ length: 40 }, () => a.createJob());
    for (const id of ids) a.emit(id, id);
    await a.flush();
    const keys = new Keys(prefix, 8);
    const admin = client();
    const ranges = (await admin.cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
    const masterOf = (slot: number): string => {
      const [, , [host, port]] = ranges.find(([lo, hi]) => slot >= lo && slot <= hi)!;
      return `${host}:${port}`;
    };
    const masters = new Set<string>();
    for (const id of ids) {
      const slot = Number(await admin.cluster('KEYSLOT', keys.tokens(id)));
      masters.add(masterOf(slot));
      expect(await admin.cluster('KEYSLOT', keys.events(keys.shardOf(id)))).toBe(slot);
    }
    expect(masters.size).toBe(3);
    // Every job is listed, and read from the other registry, whichever master holds it.
    expect((await b.listJobs()).map((s) => s.id).sort()).toEqual(expect.arrayContaining([...ids].sort()));
    const reads = ids.map((id) => collect(b.tokens$(id)));
    for (const id of ids) a.updateState(id, 'completed');
    await Promise.all(reads.map((r) => r.done));
    reads.forEach((r, i) => expect(r.values.map((v) => v.token)).toEqual([ids[i]]));
    await Promise.all([a.dispose(), b.dispose()]);
  }, 30_000);

  test("a process's new jobs take the masters in turn: an even share each, not a hash's luck", async () => {
    const a = new JobRegistry<string>({ backend: redisBackend({ redis: client(), prefix }) });
    await a.ready();
    const keys = new Keys(prefix, 8);
    const admin = client();
    const ranges = (await admin.cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
    const masterOf = (id: string): string => {
      const slot = keys.slots[keys.shardOf(id)]!;
      const [, , [host, port]] = ranges.find(([lo, hi]) => slot >= lo && slot <= hi)!;
      return `${host}:${port}`;
    };
    const jobs = new Map<string, number>();
    const ids = Array.from({ length: 90 }, () => a.createJob());
    for (const id of ids) jobs.set(masterOf(id), (jobs.get(masterOf(id)) ?? 0) + 1);
    // 8 shards fall 3, 3 and 2 on three masters, and 90 uuids would spread unevenly by chance alone.
    expect([...jobs.values()]).toEqual([30, 30, 30]);
    // A keyed job still goes to its key's shard.
    const keyed = a.createJob({ key: 'chat-7' });
    expect(keys.shardOf(keyed)).toBe(keys.shardOf('chat-7'));
    await a.dispose();
  }, 30_000);

  test("a tick's writes go to each master as one pipeline, whichever shards they touch", async () => {
    const redis = client();
    const a = new JobRegistry<string>({ backend: redisBackend({ redis, prefix }) });
    const b = new JobRegistry<string>({ backend: redisBackend({ redis: client(), prefix }) });
    await Promise.all([a.ready(), b.ready()]);
    const keys = new Keys(prefix, 8);
    const pipeline = redis.pipeline.bind(redis);
    try {
      let pipelines = 0;
      redis.pipeline = (...args: Parameters<typeof pipeline>) => (pipelines++, pipeline(...args));
      // 120 random ids miss one of 8 shards with a chance of about 1 in a million.
      const ids = Array.from({ length: 120 }, () => a.createJob());
      for (const id of ids) for (let k = 0; k < 3; k++) a.emit(id, `${id}:${k}`);
      // The tick's pipelines are made as it writes; counted up to here, no timer's (the sweep's) can be.
      redis.pipeline = pipeline;
      await a.flush();
      expect(new Set(ids.map((id) => keys.shardOf(id))).size).toBe(8);
      expect(pipelines).toBe(3);
      const reads = ids.map((id) => collect(b.tokens$(id)));
      for (const id of ids) a.updateState(id, 'completed');
      await Promise.all(reads.map((r) => r.done));
      reads.forEach((r, i) =>
        expect(r.values.map((v) => v.token)).toEqual([0, 1, 2].map((k) => `${ids[i]}:${k}`)),
      );
    } finally {
      redis.pipeline = pipeline;
      await Promise.all([a.dispose(), b.dispose()]);
    }
  }, 30_000);

  describe('example servers sharing the cluster', () => {
    let A: ServerProcess;
    let B: ServerProcess;
    beforeAll(async () => {
      const env = {
        REDIS_CLUSTER_NODES: cluster!.nodes.map((n) => `${n.host}:${n.port}`).join(','),
        REDIS_PREFIX: prefix,
        REDIS_LEASE_MS: '1500',
      };
      [A, B] = await Promise.all([spawnServer(env), spawnServer(env)]);
    }, 60_000);
    afterAll(async () => {
      await Promise.all([A?.stop(), B?.stop()]);
    });

    test('POST on A, stream and cancel on B', async () => {
      const done = JSON.parse(
        (await postJson(`${A.url}/v1/inference`, { prompt: 'a b c', max_tokens: 30 })).body,
      );
      const events = parseSse((await http(B.url + done.sse_url)).body);
      expect(events.filter((e) => e.event === 'token').map((e) => JSON.parse(e.data))).toEqual(
        Array.from({ length: 30 }, (_, i) => 'abc'[i % 3]),
      );
      expect(events.at(-1)?.event).toBe('done');
      const slow = JSON.parse(
        (await postJson(`${A.url}/v1/inference`, { prompt: 'x', max_tokens: 5000, delay_ms: 5 })).body,
      );
      const del = await http(`${B.url}/v1/inference/${slow.job_id}`, { method: 'DELETE' });
      expect(del.status).toBe(200);
      expect(JSON.parse(del.body).state).toBe('cancelled');
      expect(JSON.parse((await http(`${A.url}/v1/inference/${slow.job_id}`)).body).state).toBe('cancelled');
    }, 30_000);
  });

  test('a failed connection to one master is logged once, and its recovery once', async () => {
    const lines: string[] = [];
    const log = {
      error: (m: string) => void lines.push(`error ${m}`),
      warn: (m: string) => void lines.push(`warn ${m}`),
      info: (m: string) => void lines.push(`info ${m}`),
    };
    const redis = client();
    const r = new JobRegistry<string>({ backend: redisBackend({ redis, prefix, logger: log }) });
    try {
      await r.ready();
      // A network error on one master's connection (a reset): a Cluster reports it as 'node error' and
      // drops the node from its pool. The master chosen does not hold the key the sweep reads alone (the
      // epoch), so only the backend itself has the slot table read again; until then every pipeline
      // that spans the master's slots is answered MOVED.
      const epochSlot = Number(await redis.cluster('KEYSLOT', new Keys(prefix, 8).epoch));
      const slots = (await redis.cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
      const [, , [, epochPort]] = slots.find(([lo, hi]) => epochSlot >= lo && epochSlot <= hi)!;
      const node = redis.nodes('master').find((n) => n.options.port !== epochPort)!;
      await node.ping();
      node.stream.destroy(new Error('connection reset by the test'));
      await waitFor(() => lines.some((l) => l.includes('connection works again')), 10_000, 'recovery logged');
      expect(lines.filter((l) => l.includes('a connection to Redis failed'))).toEqual([
        expect.stringContaining('connection reset by the test'),
      ]);
      expect(lines.filter((l) => l.includes('connection works again'))).toHaveLength(1);
      // The registry works through the master that came back.
      await waitFor(
        async () => {
          const id = r.createJob();
          r.emit(id, 'x');
          await r.flush();
          return (await r.findJob(id))?.tokenCount === 1;
        },
        10_000,
        'a job stored after the reset',
      );
    } finally {
      await r.dispose();
    }
  });
});
