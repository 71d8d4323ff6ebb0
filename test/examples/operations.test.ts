/**
 * The example server as operators run it: `/metrics` (Prometheus text through prom-client) whose counters
 * move as jobs run, the probes, and the graceful drain on SIGTERM (a real child process): short jobs
 * finish, new work is refused with 503 and Retry-After, long jobs are cancelled at DRAIN_MS.
 */
import { request } from 'node:http';
import { startServer, type RunningServer } from '../../examples/inference-server.js';
import { waitFor } from '../helpers/collect.js';
import { http, parseSse, postJson } from '../helpers/http.js';
import { spawnServer } from '../helpers/processes.js';

const KEY = 'operations-key-0123456789abcdef';
const auth = { authorization: `Bearer ${KEY}` };
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

/**
 * The value of one sample line (`name{labels} value`) of a Prometheus scrape. A labelled counter has no
 * line before its first increment: `missing` is its value then.
 */
function sample(text: string, series: string, missing?: number): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  if (line === undefined && missing !== undefined) return missing;
  if (line === undefined) throw new Error(`no sample ${series} in the scrape`);
  return Number(line.slice(series.length + 1));
}

describe('metrics and probes', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({ port: 0, apiKeys: [KEY], logger: quiet });
  }, 30_000);
  afterAll(() => server?.close());

  test('/metrics is Prometheus text behind the key, and its counters move when a job runs', async () => {
    expect((await http(`${server.url}/metrics`)).status).toBe(401);
    const scrape = async (): Promise<string> => {
      const res = await http(`${server.url}/metrics`, { headers: auth });
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
      return res.body;
    };
    const before = await scrape();
    expect(before).toContain('# TYPE job_registry_tokens_total counter');
    expect(before).toContain('# TYPE job_registry_jobs gauge');
    // prom-client's default metrics share the registry.
    expect(before).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(before).toMatch(/^nodejs_eventloop_lag_seconds \d/m);

    const res = await http(`${server.url}/v1/inference`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({ prompt: 'count these tokens', max_tokens: 25 }),
    });
    const { sse_url } = JSON.parse(res.body);
    // While its stream is open, it counts as an open stream.
    let body = '';
    let ended = false;
    request(server.url + sse_url, (r) => {
      r.on('data', (c: Buffer) => (body += c.toString()));
      r.on('end', () => (ended = true));
    }).end();
    await waitFor(() => ended, 5000, 'the stream to end');
    expect(parseSse(body).at(-1)!.event).toBe('done');

    const after = await scrape();
    const grew = (series: string): number => sample(after, series) - sample(before, series, 0);
    expect(grew('job_registry_tokens_total')).toBe(25);
    expect(grew('job_registry_jobs_created_total')).toBe(1);
    expect(grew('job_registry_jobs_ended_total{state="completed"}')).toBe(1);
    expect(sample(after, 'job_registry_jobs{state="completed"}')).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'job_registry_open_streams')).toBe(0);
  });

  test('/healthz and /readyz answer without a key', async () => {
    const health = await http(`${server.url}/healthz`);
    expect([health.status, JSON.parse(health.body)]).toEqual([200, { ok: true }]);
    const ready = await http(`${server.url}/readyz`);
    expect([ready.status, JSON.parse(ready.body)]).toEqual([200, { ok: true }]);
  });
});

test('SIGTERM: a short job finishes (done), new POSTs and /readyz get 503 with Retry-After, a long job is cancelled at DRAIN_MS, exit 0', async () => {
  const server = await spawnServer({ DRAIN_MS: '2500', RETRY_AFTER_SECONDS: '7' });
  try {
    const open = async (
      payload: object,
    ): Promise<{ job_id: string; events: () => string; ended: () => boolean }> => {
      const { job_id, sse_url } = JSON.parse((await postJson(`${server.url}/v1/inference`, payload)).body);
      let body = '';
      let ended = false;
      request(server.url + sse_url, (res) => {
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => (ended = true));
      }).end();
      return { job_id, events: () => body, ended: () => ended };
    };
    // 20 tokens 50 ms apart: about 1 s, well within the drain.
    const short = await open({ prompt: 'short job words', max_tokens: 20, delay_ms: 50 });
    const long = await open({ prompt: 'long job', max_tokens: 10_000, delay_ms: 20 });
    await waitFor(() => short.events().includes('id: 3\n'), 5000, 'the first tokens');

    const signalled = Date.now();
    const exit = server.stop('SIGTERM');
    await waitFor(async () => (await http(`${server.url}/readyz`)).status === 503, 2000, 'readyz 503');
    const ready = await http(`${server.url}/readyz`);
    expect(JSON.parse(ready.body)).toEqual({ ok: false, reason: 'draining' });
    expect(ready.headers['retry-after']).toBe('7');
    expect((await http(`${server.url}/healthz`)).status).toBe(200);

    const refused = await postJson(`${server.url}/v1/inference`, { prompt: 'too late' });
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('7');
    expect(JSON.parse(refused.body).error.code).toBe('DRAINING');
    const refusedResponse = await postJson(`${server.url}/v1/responses`, {
      model: 'sim',
      input: 'too late',
      background: true,
    });
    expect(refusedResponse.status).toBe(503);
    expect(refusedResponse.headers['retry-after']).toBe('7');
    expect(JSON.parse(refusedResponse.body).error.code).toBe('DRAINING');
    // Streams of existing jobs are still served while draining.
    expect((await http(`${server.url}/v1/inference/${short.job_id}`)).status).toBe(200);

    await waitFor(() => short.ended(), 5000, 'the short stream to end');
    const shortEvents = parseSse(short.events());
    expect(shortEvents.filter((e) => e.event === 'token')).toHaveLength(20);
    expect(shortEvents.at(-1)).toEqual({ id: '20', event: 'done', data: '{"state":"completed"}' });

    expect(await exit).toBe(0);
    const took = Date.now() - signalled;
    expect(took).toBeGreaterThanOrEqual(2400);
    expect(took).toBeLessThan(6000);
    await waitFor(() => long.ended(), 2000, 'the long stream to end');
    const longEvents = parseSse(long.events());
    expect(longEvents.at(-1)).toMatchObject({
      event: 'error',
      data: JSON.stringify({ state: 'cancelled', error: 'the server is shutting down' }),
    });
    const msgs = server
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(msgs).toContain('SIGTERM: drained (1 finished, 1 cancelled); exiting');
  } finally {
    await server.stop('SIGKILL');
  }
}, 30_000);
