/**
 * Durable Streams on Redis across replicas: two example servers on one Redis serve every operation of
 * every stream (a name is one stream everywhere, appends and producers from either, live reads on the
 * other, deletes), a stream outlives the replica that made it, and forks share their source's data in
 * Redis instead of copying it. On one Redis and on a Redis Cluster.
 */
import { Redis, type Cluster } from 'ioredis';
import { startServer, type RunningServer } from '../../examples/inference-server.js';
import { http, openResponse, type Answer } from '../helpers/http.js';
import { waitFor } from '../helpers/collect.js';
import { clusterClient, clusterNodes, dropClusterPrefix, type TestCluster } from '../helpers/cluster.js';
import { dropPrefix, haveRedis, REDIS_URL, testPrefix } from '../helpers/redis.js';

const KEY_A = 'shared-ds-key-a-5e1f0c9a7b3d2468';
const KEY_B = 'shared-ds-key-b-0a2b4c6d8e1f3579';
const A = { authorization: `Bearer ${KEY_A}` };
const B = { authorization: `Bearer ${KEY_B}` };
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
const MiB = 1024 * 1024;

describe.each(['redis', 'cluster'] as const)('Durable Streams shared by replicas (%s)', (kind) => {
  let one: RunningServer | undefined;
  let two: RunningServer | undefined;
  let prefix: string;
  let cluster: TestCluster | undefined;
  let admin: Redis | Cluster | undefined;
  let where: { redisUrl: string } | { redisClusterNodes: string[] };

  beforeAll(async () => {
    if (kind === 'redis' && !(await haveRedis())) return;
    if (kind === 'cluster' && (cluster = await clusterNodes()) === undefined) return;
    prefix = testPrefix('ds-shared');
    where =
      cluster === undefined
        ? { redisUrl: REDIS_URL }
        : { redisClusterNodes: cluster.nodes.map((n) => `${n.host}:${n.port}`) };
    const options = {
      port: 0,
      logger: quiet,
      apiKeys: [KEY_A, KEY_B],
      maxStreamBytes: 32 * MiB,
      redisPrefix: prefix,
      ...where,
    };
    one = await startServer(options);
    two = await startServer(options);
    admin = cluster === undefined ? new Redis(REDIS_URL) : clusterClient(cluster.nodes);
    if (cluster !== undefined) await (admin as Cluster).connect();
  }, 60_000);

  afterAll(async () => {
    await one?.close();
    await two?.close();
    admin?.disconnect();
    if (admin === undefined) return;
    if (cluster === undefined) await dropPrefix(prefix);
    else {
      await dropClusterPrefix(cluster.nodes, prefix);
      await cluster.stop();
    }
  });

  const on = (s: RunningServer | undefined, name: string): string => `${s!.url}/v1/stream/${name}`;
  const unique = (what: string): string => `${what}-${Math.random().toString(36).slice(2, 10)}`;
  const put = (url: string, headers: Record<string, string>, body?: string | Buffer): Promise<Answer> =>
    http(url, {
      method: 'PUT',
      headers: { 'content-type': 'text/plain', ...headers },
      ...(body !== undefined ? { body } : {}),
    });
  const post = (url: string, headers: Record<string, string>, body?: string | Buffer): Promise<Answer> =>
    http(url, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', ...headers },
      ...(body !== undefined ? { body } : {}),
    });
  const readAll = async (url: string, headers: Record<string, string>): Promise<string> => {
    let offset = '-1';
    let out = '';
    for (;;) {
      const r = await http(`${url}?offset=${offset}`, { headers });
      expect(r.status).toBe(200);
      out += r.body;
      offset = r.headers['stream-next-offset'] as string;
      if (r.headers['stream-up-to-date'] === 'true') return out;
    }
  };
  /** Bytes Redis uses for every key under the test prefix. */
  const usedBytes = async (): Promise<number> => {
    let total = 0;
    const nodes = cluster === undefined ? [admin as Redis] : (admin as Cluster).nodes('master');
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        for (const k of keys) total += (await node.memory('USAGE', k, 'SAMPLES', 0)) ?? 0;
      } while (cursor !== '0');
    }
    return total;
  };
  const skip = (): boolean => one === undefined;

  test('a stream made on one replica is served by the other: HEAD, appends, reads, live SSE, close, delete', async () => {
    if (skip()) return;
    const name = unique('both');
    expect((await put(on(one, name), A, 'one ')).status).toBe(201);
    const head = await http(on(two, name), { method: 'HEAD', headers: A });
    expect([head.status, head.headers['content-type'], head.headers['stream-next-offset']]).toEqual([
      200,
      'text/plain',
      '0000000000000000_0000000000000001',
    ]);
    expect((await post(on(two, name), A, 'two ')).status).toBe(204);
    expect(await readAll(on(one, name), A)).toBe('one two ');
    const sse = await openResponse(`${on(two, name)}?offset=-1&live=sse`, { headers: A });
    expect(sse.status).toBe(200);
    await waitFor(() => sse.text().includes('two '), 10_000, 'the catch-up on the other replica');
    expect((await post(on(one, name), A, 'three')).status).toBe(204);
    await waitFor(() => sse.text().includes('three'), 10_000, "the first replica's append, live");
    expect((await post(on(one, name), { ...A, 'stream-closed': 'true' })).status).toBe(204);
    await sse.ended;
    expect(sse.text()).toContain('"streamClosed":true');
    expect((await http(on(two, name), { method: 'DELETE', headers: A })).status).toBe(204);
    expect((await http(on(one, name), { method: 'HEAD', headers: A })).status).toBe(404);
  });

  test('a name is one stream everywhere: another key cannot take it on the other replica', async () => {
    if (skip()) return;
    const name = unique('one-name');
    expect((await put(on(one, name), A, 'mine')).status).toBe(201);
    const squat = await put(on(two, name), B, 'squatter');
    expect(squat.status).toBe(409);
    expect(squat.body).not.toContain('mine');
    expect((await http(`${on(two, name)}?offset=-1`, { headers: B })).status).toBe(404);
    expect((await put(on(two, name), A)).status).toBe(200);
    expect(await readAll(on(two, name), A)).toBe('mine');
    expect((await http(on(one, name), { method: 'DELETE', headers: A })).status).toBe(204);
  });

  test("an idempotent producer's appends go to either replica in one order, retries deduplicated", async () => {
    if (skip()) return;
    const name = unique('producer');
    expect((await put(on(one, name), A)).status).toBe(201);
    const as = (epoch: number, seq: number): Record<string, string> => ({
      ...A,
      'producer-id': 'p1',
      'producer-epoch': String(epoch),
      'producer-seq': String(seq),
    });
    expect((await post(on(one, name), as(0, 0), 'a')).status).toBe(200);
    expect((await post(on(two, name), as(0, 1), 'b')).status).toBe(200);
    const retry = await post(on(one, name), as(0, 1), 'b');
    expect([retry.status, retry.headers['producer-seq']]).toEqual([204, '1']);
    const gap = await post(on(two, name), as(0, 3), 'd');
    expect([gap.status, gap.headers['producer-expected-seq']]).toEqual([409, '2']);
    expect((await post(on(two, name), as(1, 0), 'c')).status).toBe(200);
    const stale = await post(on(one, name), as(0, 2), 'x');
    expect([stale.status, stale.headers['producer-epoch']]).toEqual([403, '1']);
    expect(await readAll(on(one, name), A)).toBe('abc');
    expect((await http(on(one, name), { method: 'DELETE', headers: A })).status).toBe(204);
  });

  test('a stream outlives the replica that made it', async () => {
    if (skip()) return;
    const third = await startServer({
      port: 0,
      logger: quiet,
      apiKeys: [KEY_A, KEY_B],
      redisPrefix: prefix,
      ...where,
    });
    const name = unique('outlives');
    expect((await put(on(third, name), A, 'before ')).status).toBe(201);
    await third.close();
    expect((await post(on(two, name), A, 'after')).status).toBe(204);
    expect(await readAll(on(one, name), A)).toBe('before after');
    expect((await http(on(one, name), { method: 'DELETE', headers: A })).status).toBe(204);
  });

  /** The job id, hash and token stream keys of a stream by name (read from Redis). */
  const keysOf = async (name: string): Promise<{ meta: string; tokens: string }> => {
    const nodes = cluster === undefined ? [admin as Redis] : (admin as Cluster).nodes('master');
    for (const node of nodes) {
      const [, found] = await node.scan('0', 'MATCH', `${prefix}*:stream:${name}`, 'COUNT', 100000);
      if (found.length === 0) continue;
      const jobId = (await admin!.get(found[0]!))!;
      const base = found[0]!.slice(0, found[0]!.indexOf(':stream:'));
      return { meta: `${base}:job:${jobId}`, tokens: `${base}:tokens:${jobId}` };
    }
    throw new Error(`no stream record for ${name}`);
  };

  test("a fork's reads keep its source's data as long as the fork: the source's deadline does not take it", async () => {
    if (skip()) return;
    const short = await startServer({
      port: 0,
      logger: quiet,
      apiKeys: [KEY_A],
      retentionMs: 200,
      redisPrefix: prefix,
      ...where,
    });
    try {
      const source = unique('short-source');
      const fork = unique('long-fork');
      expect((await put(on(short, source), { ...A, 'stream-ttl': '1' }, 'hello')).status).toBe(201);
      expect(
        (
          await put(on(short, fork), {
            ...A,
            'stream-ttl': '30',
            'stream-forked-from': `/v1/stream/${source}`,
          })
        ).status,
      ).toBe(201);
      // The source's deadline passes: deleted, but only hidden, as a fork is left.
      await waitFor(
        async () => (await http(on(short, source), { method: 'HEAD', headers: A })).status === 410,
        10_000,
        "the source's TTL",
      );
      expect(await readAll(on(short, fork), A)).toBe('hello');
      const src = await keysOf(source);
      const own = await keysOf(fork);
      // Its source's data lives as long as the fork: the read's touch extends both (written as it goes).
      await waitFor(
        async () => (await admin!.pttl(src.tokens)) >= (await admin!.pttl(own.meta)) - 300,
        5000,
        "the source's data to live as long as the fork",
      );
      expect(await readAll(on(short, fork), A)).toBe('hello');
    } finally {
      await short.close();
    }
  });

  test('a stream read twice in a second has its last read stored (its TTL slides from it)', async () => {
    if (skip()) return;
    const name = unique('slides');
    expect((await put(on(one, name), { ...A, 'stream-ttl': '60' }, 'x')).status).toBe(201);
    const { meta } = await keysOf(name);
    await readAll(on(one, name), A);
    const before = Date.now();
    await readAll(on(one, name), A);
    // The second read's touch is written at the end of the first one's window.
    await waitFor(
      async () => Number(await admin!.hget(meta, 'ds_touched')) >= before,
      5000,
      'the trailing touch',
    );
    expect((await http(on(one, name), { method: 'DELETE', headers: A })).status).toBe(204);
  });

  test('racing creates cannot pass the quota; maxJobs counts streams kept in Redis', async () => {
    if (skip()) return;
    const tight = await startServer({
      port: 0,
      logger: quiet,
      apiKeys: [KEY_A, KEY_B],
      maxJobsPerPrincipal: 3,
      maxJobs: 5,
      redisPrefix: prefix,
      ...where,
    });
    try {
      const names = Array.from({ length: 12 }, () => unique('race'));
      const statuses = await Promise.all(names.map(async (n) => (await put(on(tight, n), A)).status));
      expect(statuses.filter((c) => c === 201).length).toBe(3);
      expect(statuses.filter((c) => c === 429).length).toBe(9);
      // B fills the rest of the process's five; a sixth stream of anybody's is refused.
      expect((await put(on(tight, unique('b1')), B)).status).toBe(201);
      expect((await put(on(tight, unique('b2')), B)).status).toBe(201);
      expect((await put(on(tight, unique('b3')), B)).status).toBe(429);
    } finally {
      await tight.close();
    }
  });

  test('a source deleted while a fork is left keeps no key without an expiry', async () => {
    if (skip()) return;
    const source = unique('empty-source');
    const fork = unique('its-fork');
    expect((await put(on(one, source), A)).status).toBe(201);
    expect((await put(on(two, fork), { ...A, 'stream-forked-from': `/v1/stream/${source}` })).status).toBe(
      201,
    );
    const src = await keysOf(source);
    expect((await http(on(one, source), { method: 'DELETE', headers: A })).status).toBe(204);
    expect(await admin!.pttl(src.tokens)).toBeGreaterThan(0);
    expect(await admin!.pttl(src.meta)).toBeGreaterThan(0);
    expect((await http(on(two, fork), { method: 'DELETE', headers: A })).status).toBe(204);
  });

  test('five forks of a 20 MB stream share its data: under 1 MB more in Redis, each reads the whole', async () => {
    if (skip()) return;
    const source = unique('big');
    expect((await put(on(one, source), { ...A, 'content-type': 'application/octet-stream' })).status).toBe(
      201,
    );
    for (let i = 0; i < 20; i++) {
      const r = await post(
        on(i % 2 === 0 ? one : two, source),
        { ...A, 'content-type': 'application/octet-stream' },
        Buffer.alloc(MiB, 97 + (i % 26)),
      );
      expect(r.status).toBe(204);
    }
    const before = await usedBytes();
    expect(before).toBeGreaterThan(20 * MiB);
    const forks = Array.from({ length: 5 }, () => unique('fork'));
    for (const f of forks)
      expect(
        (
          await put(on(two, f), {
            ...A,
            'content-type': 'application/octet-stream',
            'stream-forked-from': `/v1/stream/${source}`,
          })
        ).status,
      ).toBe(201);
    const added = (await usedBytes()) - before;
    expect(added).toBeLessThan(MiB);
    // A fork reads its source's chunks, then its own.
    expect(
      (await post(on(one, forks[0]!), { ...A, 'content-type': 'application/octet-stream' }, 'tail')).status,
    ).toBe(204);
    const whole = await readAll(on(one, forks[0]!), A);
    expect(whole.length).toBe(20 * MiB + 4);
    expect(whole.slice(MiB - 1, MiB + 1)).toBe('ab');
    expect(whole.endsWith('tail')).toBe(true);
    // The source deleted while forks are left: 410, its data still read through them.
    expect((await http(on(two, source), { method: 'DELETE', headers: A })).status).toBe(204);
    expect((await http(on(one, source), { method: 'HEAD', headers: A })).status).toBe(410);
    expect((await readAll(on(two, forks[1]!), A)).length).toBe(20 * MiB);
    for (const f of forks)
      expect((await http(on(one, f), { method: 'DELETE', headers: A })).status).toBe(204);
    // The last fork gone, so is the source, and its data.
    expect((await http(on(two, source), { method: 'HEAD', headers: A })).status).toBe(404);
    await waitFor(async () => (await usedBytes()) < MiB, 10_000, "the source's data to go");
  }, 60_000);
});
