/**
 * The Durable Streams routes of the example server under the one policy, attack by attack, in memory and
 * on Redis: with API keys, another key's streams and jobs answer 404 on every route (read, HEAD, SSE,
 * long-poll, append, fork, delete), a taken name answers 409 without its content; streams count against
 * the job quota and readers against the stream limits; bodies, streams and reads are bounded; a stream
 * ends by its own deadline; CORS comes only from the `cors` option.
 */
import { startServer, type RunningServer } from '../../examples/inference-server.js';
import { principalIdOf } from '../../examples/api-keys.js';
import { waitFor } from '../helpers/collect.js';
import { http, openResponse, type Answer, type OpenResponse } from '../helpers/http.js';
import { dropPrefix, haveRedis, REDIS_URL, testPrefix } from '../helpers/redis.js';

const KEY_A = 'tenancy-key-a-7c1e9d0b5a3f2468';
const KEY_B = 'tenancy-key-b-13579bdf02468ace';
const A = { authorization: `Bearer ${KEY_A}` };
const B = { authorization: `Bearer ${KEY_B}` };
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
const QUOTA = 4;

const backends = ['memory', 'redis'] as const;

describe.each(backends)('Durable Streams under the policy (%s)', (backend) => {
  let server: RunningServer;
  let base: string;
  let prefix: string | undefined;
  const open: OpenResponse[] = [];

  beforeAll(async () => {
    const redis = backend === 'redis' && (await haveRedis());
    if (backend === 'redis' && !redis) return;
    prefix = redis ? testPrefix('ds-tenancy') : undefined;
    server = await startServer({
      port: 0,
      logger: quiet,
      apiKeys: [KEY_A, KEY_B],
      maxJobsPerPrincipal: QUOTA,
      maxStreamsPerPrincipal: 2,
      maxStreamBytes: 1536 * 1024,
      ...(prefix !== undefined ? { redisUrl: REDIS_URL, redisPrefix: prefix } : {}),
    });
    base = `${server.url}/v1/stream`;
  }, 30_000);
  afterEach(() => {
    for (const r of open.splice(0)) r.close();
  });
  afterAll(async () => {
    await server?.close();
    if (prefix !== undefined) await dropPrefix(prefix);
  });

  const put = (name: string, headers: Record<string, string>, body?: string | Buffer): Promise<Answer> =>
    http(`${base}/${name}`, {
      method: 'PUT',
      headers: { 'content-type': 'text/plain', ...headers },
      ...(body !== undefined ? { body } : {}),
    });
  const append = (name: string, headers: Record<string, string>, body: string | Buffer): Promise<Answer> =>
    http(`${base}/${name}`, { method: 'POST', headers: { 'content-type': 'text/plain', ...headers }, body });
  const del = (name: string, headers: Record<string, string>): Promise<Answer> =>
    http(`${base}/${name}`, { method: 'DELETE', headers });
  const unique = (what: string): string => `${what}-${Math.random().toString(36).slice(2, 10)}`;
  /** Deletes A's streams made by a test, so the quota starts empty for the next. */
  const cleanup = async (...names: string[]): Promise<void> => {
    for (const n of names) await del(n, A);
  };
  /** A's live jobs and open streams, wherever they are kept (on Redis, streams are no process's jobs). */
  const live = async (): Promise<number> =>
    (await server.registry.listJobs()).filter(
      (j) => j.owner === principalIdOf(KEY_A) && !['completed', 'failed', 'cancelled'].includes(j.state),
    ).length;
  const skip = (): boolean => server === undefined;

  test("another key's stream answers 404 on every read route, as an unknown name does", async () => {
    if (skip()) return;
    const name = unique('secret');
    expect((await put(name, A, 'private words')).status).toBe(201);
    for (const target of [name, unique('unknown')]) {
      for (const q of ['?offset=-1', '?offset=-1&live=long-poll', '']) {
        const r = await http(`${base}/${target}${q}`, { headers: B });
        expect([target, q, r.status]).toEqual([target, q, 404]);
        expect(r.body).not.toContain('private');
      }
      expect((await http(`${base}/${target}`, { method: 'HEAD', headers: B })).status).toBe(404);
      const sse = await openResponse(`${base}/${target}?offset=-1&live=sse`, { headers: B });
      open.push(sse);
      expect(sse.status).toBe(404);
      await sse.ended;
      expect(sse.text()).not.toContain('private');
    }
    // The owner reads it.
    const own = await http(`${base}/${name}?offset=-1`, { headers: A });
    expect([own.status, own.body]).toEqual([200, 'private words']);
    await cleanup(name);
  });

  test("another key cannot append to, delete or fork a stream; the owner's stream is untouched", async () => {
    if (skip()) return;
    const name = unique('owned');
    expect((await put(name, A, 'one')).status).toBe(201);
    expect((await append(name, B, 'two')).status).toBe(404);
    expect((await del(name, B)).status).toBe(404);
    const fork = unique('fork');
    const forked = await put(fork, { ...B, 'stream-forked-from': `/v1/stream/${name}` });
    expect(forked.status).toBe(404);
    // Nothing was made under the fork's name.
    expect((await http(`${base}/${fork}`, { method: 'HEAD', headers: B })).status).toBe(404);
    const own = await http(`${base}/${name}?offset=-1`, { headers: A });
    expect([own.status, own.body]).toEqual([200, 'one']);
    // The owner may fork its own stream.
    expect((await put(fork, { ...A, 'stream-forked-from': `/v1/stream/${name}` })).status).toBe(201);
    await cleanup(fork, name);
  });

  test('a stream deleted while forks of it are left holds no quota slot; its name stays taken (409)', async () => {
    if (skip()) return;
    await waitFor(async () => (await live()) === 0, 10_000, 'no live job of A');
    const source = unique('source');
    const fork = unique('fork');
    expect((await put(source, A, 'data')).status).toBe(201);
    expect((await put(fork, { ...A, 'stream-forked-from': `/v1/stream/${source}` })).status).toBe(201);
    expect(await live()).toBe(2);
    expect((await del(source, A)).status).toBe(204);
    expect(await live()).toBe(1);
    expect((await http(`${base}/${source}?offset=-1`, { headers: A })).status).toBe(410);
    expect((await put(source, A)).status).toBe(409);
    const copy = await http(`${base}/${fork}?offset=-1`, { headers: A });
    expect([copy.status, copy.body]).toEqual([200, 'data']);
    await cleanup(fork);
    expect(await live()).toBe(0);
    expect((await http(`${base}/${source}?offset=-1`, { headers: A })).status).toBe(404);
  });

  test('a name another key holds answers 409 and tells nothing of its stream', async () => {
    if (skip()) return;
    const name = unique('taken');
    expect((await put(name, A, 'held')).status).toBe(201);
    const again = await put(name, B);
    expect(again.status).toBe(409);
    expect(again.headers['stream-next-offset']).toBeUndefined();
    expect(again.body).not.toContain('held');
    // The owner's idempotent re-create (same configuration) still answers 200.
    expect((await put(name, A)).status).toBe(200);
    await cleanup(name);
  });

  test("jobs of the dual-call and Responses routes read as streams only by their owner's key", async () => {
    if (skip()) return;
    const job = await http(`${server.url}/v1/inference`, {
      method: 'POST',
      headers: { ...A, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'alpha beta gamma', delay_ms: 20 }),
    });
    expect(job.status).toBe(202);
    const jobId = JSON.parse(job.body).job_id as string;
    const resp = await http(`${server.url}/v1/responses`, {
      method: 'POST',
      headers: { ...A, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', input: 'delta epsilon', background: true }),
    });
    expect(resp.status).toBe(200);
    const respJob = (JSON.parse(resp.body).id as string).replace(/^resp_/, '');
    for (const id of [jobId, respJob]) {
      expect((await http(`${base}/${id}?offset=-1`, { headers: B })).status).toBe(404);
      expect((await http(`${base}/${id}`, { method: 'HEAD', headers: B })).status).toBe(404);
      expect((await del(id, B)).status).toBe(404);
      expect((await put(unique('f'), { ...B, 'stream-forked-from': `/v1/stream/${id}` })).status).toBe(404);
      expect((await http(`${base}/${id}?offset=-1`, { headers: A })).status).toBe(200);
    }
    await waitFor(async () => (await live()) === 0, 10_000, "A's jobs to end");
  });

  test('streams count against the per-key job quota; other keys still create jobs', async () => {
    if (skip()) return;
    await waitFor(async () => (await live()) === 0, 10_000, 'no live job of A');
    const names = Array.from({ length: QUOTA }, () => unique('quota'));
    for (const n of names) expect((await put(n, A)).status).toBe(201);
    const over = await put(unique('quota'), A);
    expect(over.status).toBe(429);
    expect(over.headers['retry-after']).toBe('5');
    const job = await http(`${server.url}/v1/inference`, {
      method: 'POST',
      headers: { ...A, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'x' }),
    });
    expect(job.status).toBe(429);
    const other = await http(`${server.url}/v1/inference`, {
      method: 'POST',
      headers: { ...B, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'x' }),
    });
    expect(other.status).toBe(202);
    await cleanup(...names);
    expect(await live()).toBe(0);
  });

  test('SSE readers and long-polls count against the per-key stream limit', async () => {
    if (skip()) return;
    const name = unique('readers');
    expect((await put(name, A)).status).toBe(201);
    const first = await openResponse(`${base}/${name}?offset=-1&live=sse`, { headers: A });
    open.push(first);
    const poll = openResponse(`${base}/${name}?offset=-1&live=long-poll`, { headers: A });
    // The long-poll is waiting (counted) once the stream limit refuses a third reader.
    let third: Answer | undefined;
    await waitFor(async () => {
      third = await http(`${base}/${name}?offset=-1&live=sse`, { headers: A });
      return third.status === 429;
    });
    expect(third!.headers['retry-after']).toBe('5');
    expect(first.status).toBe(200);
    expect((await append(name, A, 'wake')).status).toBe(204);
    const answered = await poll;
    expect(answered.status).toBe(200);
    first.close();
    await waitFor(async () => {
      const r = await openResponse(`${base}/${name}?offset=-1&live=sse`, { headers: A });
      open.push(r);
      return r.status === 200;
    });
    await cleanup(name);
  });

  test('readers of every surface count together against one stream limit', async () => {
    if (skip()) return;
    const name = unique('across');
    expect((await put(name, A)).status).toBe(201);
    const made = await http(`${server.url}/v1/inference`, {
      method: 'POST',
      headers: { ...A, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'one two three', delay_ms: 200 }),
    });
    expect(made.status).toBe(202);
    const job = JSON.parse(made.body) as { job_id: string; sse_url: string };
    const dualCall = await openResponse(`${server.url}${job.sse_url}`, { headers: A });
    open.push(dualCall);
    const stream = await openResponse(`${base}/${name}?offset=-1&live=sse`, { headers: A });
    open.push(stream);
    expect([dualCall.status, stream.status]).toEqual([200, 200]);
    // The limit is 2 for this key: a third reader on any surface is refused.
    const responses = await http(`${server.url}/v1/responses/resp_${job.job_id}?stream=true`, { headers: A });
    expect(responses.status).toBe(429);
    expect((await http(`${base}/${name}?offset=-1&live=sse`, { headers: A })).status).toBe(429);
    // B's readers are B's.
    const other = unique('across-b');
    expect((await put(other, B)).status).toBe(201);
    const b = await openResponse(`${base}/${other}?offset=-1&live=sse`, { headers: B });
    open.push(b);
    expect(b.status).toBe(200);
    b.close();
    dualCall.close();
    await waitFor(async () => {
      const r = await openResponse(`${base}/${name}?offset=-1&live=sse`, { headers: A });
      open.push(r);
      return r.status === 200;
    });
    await cleanup(name);
    await del(other, B);
    await http(`${server.url}/v1/inference/${job.job_id}`, { method: 'DELETE', headers: A });
  });

  test('bodies, streams and reads are bounded: 413 past 1 MiB a body or the stream bound', async () => {
    if (skip()) return;
    const name = unique('big');
    expect((await put(name, A)).status).toBe(201);
    const huge = await append(name, A, Buffer.alloc(3 * 1024 * 1024, 97));
    expect(huge.status).toBe(413);
    const chunk = Buffer.alloc(700 * 1024, 98);
    expect((await append(name, A, chunk)).status).toBe(204);
    expect((await append(name, A, chunk)).status).toBe(204);
    // The stream holds 1.4 MiB of its 1.5 MiB bound: one more chunk is refused.
    expect((await append(name, A, chunk)).status).toBe(413);
    // A catch-up read returns at most 1 MiB: one chunk, then the next read the other.
    const first = await http(`${base}/${name}?offset=-1`, { headers: A });
    expect(first.body.length).toBe(chunk.length);
    expect(first.headers['stream-up-to-date']).toBeUndefined();
    const next = await http(`${base}/${name}?offset=${first.headers['stream-next-offset']}`, { headers: A });
    expect(next.body.length).toBe(chunk.length);
    expect(next.headers['stream-up-to-date']).toBe('true');
    await cleanup(name);
  });

  test('a stream ends by its own deadline: Stream-TTL frees its slot unread; a past Expires-At is refused', async () => {
    if (skip()) return;
    await waitFor(async () => (await live()) === 0, 10_000, 'no live job of A');
    const name = unique('ttl');
    expect((await put(name, { ...A, 'stream-ttl': '1' })).status).toBe(201);
    expect(await live()).toBe(1);
    await waitFor(async () => (await live()) === 0, 5000, 'the TTL to end the stream');
    expect((await http(`${base}/${name}?offset=-1`, { headers: A })).status).toBe(404);
    const past = await put(unique('past'), { ...A, 'stream-expires-at': '2000-01-01T00:00:00Z' });
    expect(past.status).toBe(400);
    expect(await live()).toBe(0);
  });

  test('malformed input is refused: a bad Content-Type, a bad percent-encoding; Location ignores Host', async () => {
    if (skip()) return;
    expect((await put(unique('ct'), { ...A, 'content-type': 'not a type' })).status).toBe(400);
    expect((await put('a%ffb', A)).status).toBe(400);
    const name = unique('loc');
    const made = await put(name, { ...A, host: 'evil.example' });
    expect(made.status).toBe(201);
    expect(made.headers.location).toBe(`/v1/stream/${name}`);
    await cleanup(name);
  });

  test('no CORS headers without the cors option, on any route or preflight', async () => {
    if (skip()) return;
    const name = unique('cors');
    const origin = { origin: 'https://attacker.example' };
    expect((await put(name, { ...A, ...origin })).headers['access-control-allow-origin']).toBeUndefined();
    const pre = await http(`${base}/${name}`, {
      method: 'OPTIONS',
      headers: { ...origin, 'access-control-request-method': 'DELETE' },
    });
    expect(pre.headers['access-control-allow-origin']).toBeUndefined();
    expect(pre.headers['access-control-allow-methods']).toBeUndefined();
    const read = await http(`${base}/${name}?offset=-1`, { headers: { ...A, ...origin } });
    expect(read.status).toBe(200);
    expect(read.headers['access-control-allow-origin']).toBeUndefined();
    await cleanup(name);
  });

  test('without a key every stream route answers 401', async () => {
    if (skip()) return;
    for (const method of ['GET', 'HEAD', 'PUT', 'POST', 'DELETE'])
      expect([method, (await http(`${base}/${unique('x')}`, { method })).status]).toEqual([method, 401]);
  });
});
