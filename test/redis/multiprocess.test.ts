import { EventSource } from 'eventsource';
import { streamJob, type EventSourceConstructor } from '../../src/client/index.js';
import { JobFailedError } from '../../src/core/index.js';
import { collect, describeIf, waitFor } from '../helpers/collect.js';
import { http, parseSse, postJson } from '../helpers/http.js';
import { spawnServer, type ServerProcess } from '../helpers/processes.js';
import { REDIS_URL, dropPrefix, haveRedis, testPrefix } from '../helpers/redis.js';

const available = await haveRedis();
const prefix = testPrefix('multi');
const LEASE_MS = 1500;

describeIf(available)('several example servers share one registry through Redis', () => {
  let A: ServerProcess;
  let B: ServerProcess;
  let C: ServerProcess;
  beforeAll(async () => {
    const env = { REDIS_URL, REDIS_PREFIX: prefix, REDIS_LEASE_MS: String(LEASE_MS) };
    [A, B, C] = await Promise.all([spawnServer(env), spawnServer(env), spawnServer(env)]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([A?.stop(), B?.stop(), C?.stop()]);
    await dropPrefix(prefix);
  });

  test('POST on A, then at once GET and stream on B: no 404, full replay and live tail in order', async () => {
    const res = await postJson(`${A.url}/v1/inference`, {
      prompt: 'a b c d e',
      max_tokens: 40,
      delay_ms: 10,
    });
    expect(res.status).toBe(202);
    const { job_id, sse_url } = JSON.parse(res.body);
    expect((await http(`${B.url}/v1/inference/${job_id}`)).status).toBe(200);
    const events = parseSse((await http(B.url + sse_url)).body);
    const tokens = events.filter((e) => e.event === 'token');
    expect(tokens.map((e) => Number(e.id))).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(tokens.map((e) => JSON.parse(e.data))).toEqual(
      Array.from({ length: 40 }, (_, i) => 'abcde'[i % 5]),
    );
    expect(events.at(-1)).toEqual({ id: '40', event: 'done', data: '{"state":"completed"}' });
  });

  test('DELETE on B stops the producer on A', async () => {
    const { job_id } = JSON.parse(
      (await postJson(`${A.url}/v1/inference`, { prompt: 'slow words', max_tokens: 5000, delay_ms: 5 })).body,
    );
    await waitFor(
      async () => JSON.parse((await http(`${B.url}/v1/inference/${job_id}`)).body).token_count > 3,
      5000,
      'tokens',
    );
    const del = await http(`${B.url}/v1/inference/${job_id}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(JSON.parse(del.body).state).toBe('cancelled');
    await waitFor(
      async () => JSON.parse((await http(`${A.url}/v1/inference/${job_id}`)).body).state === 'cancelled',
      5000,
      'A cancelled',
    );
    const count = JSON.parse((await http(`${A.url}/v1/inference/${job_id}`)).body).token_count;
    // A fixed wait, as the check is that the producer on A makes no more tokens.
    await new Promise((r) => setTimeout(r, 200));
    expect(JSON.parse((await http(`${A.url}/v1/inference/${job_id}`)).body).token_count).toBe(count);
    expect((await http(`${C.url}/v1/inference/${job_id}`, { method: 'DELETE' })).status).toBe(409);
  });

  test("B's /v1/events and /v1/jobs show A's jobs", async () => {
    const es = new EventSource(`${B.url}/v1/events`);
    const seen: Array<{ type: string; data: { job_id?: string; to?: string } }> = [];
    for (const type of ['snapshot', 'created', 'stateChanged', 'removed'])
      es.addEventListener(type, (e) => seen.push({ type, data: JSON.parse(e.data) }));
    await waitFor(() => seen.length > 0, 5000, 'snapshot');
    const { job_id } = JSON.parse(
      (await postJson(`${A.url}/v1/inference`, { prompt: 'x y', max_tokens: 2 })).body,
    );
    await waitFor(
      () => seen.some((e) => e.data.job_id === job_id && e.data.to === 'completed'),
      5000,
      'events from A',
    );
    es.close();
    expect(seen.filter((e) => e.data.job_id === job_id).map((e) => e.data.to ?? e.type)).toEqual([
      'created',
      'running',
      'completed',
    ]);
    const list = JSON.parse((await http(`${B.url}/v1/jobs`)).body) as Array<{
      job_id: string;
      state: string;
    }>;
    expect(list.find((j) => j.job_id === job_id)).toMatchObject({ state: 'completed' });
  });

  test('SIGKILL of the owner mid-stream ends the stream on B as failed, within the lease time', async () => {
    const { job_id, sse_url } = JSON.parse(
      (await postJson(`${C.url}/v1/inference`, { prompt: 'forever', max_tokens: 5000, delay_ms: 10 })).body,
    );
    const stream = collect(
      streamJob<string>(B.url + sse_url, { EventSource: EventSource as unknown as EventSourceConstructor }),
    );
    await waitFor(() => stream.values.length >= 5, 5000, 'tokens on B');
    C.child.kill('SIGKILL');
    const killedAt = Date.now();
    await stream.done;
    const took = Date.now() - killedAt;
    expect(stream.error).toBeInstanceOf(JobFailedError);
    expect((stream.error as Error).message).toMatch(/stopped renewing its lease/);
    expect(took).toBeLessThan(LEASE_MS * 3);
    const seqs = stream.values.map((v) => v.seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i));
    const ended = JSON.parse((await http(`${A.url}/v1/inference/${job_id}`)).body);
    expect(ended.state).toBe('failed');
    // Its runner died: the stored count may be the id of a token a reader of C saw, so a resume there
    // gets the end again instead of a 204 that would leave that reader without it.
    const again = await http(A.url + sse_url, { headers: { 'last-event-id': String(ended.token_count) } });
    expect(again.status).toBe(200);
    expect(parseSse(again.body).at(-1)).toMatchObject({ event: 'error' });
  }, 30_000);
});
