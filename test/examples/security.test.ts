/**
 * The example server's security, against the real process (`npm start` with its environment): the open-mode
 * warning, API keys as principals, own-jobs-only isolation, signed stream URLs.
 */
import { request, type IncomingMessage } from 'node:http';
import { EventSource } from 'eventsource';
import { throwError } from 'rxjs';
import { startServer } from '../../examples/inference-server.js';
import { principalIdOf } from '../../examples/api-keys.js';
import { waitFor, sleep } from '../helpers/collect.js';
import { http, parseSse, type Answer, type SseMessage } from '../helpers/http.js';
import { spawnServer, type ServerProcess } from '../helpers/processes.js';

const KEY_A = 'test-key-a-5f0e4c1d9b8a7766';
const KEY_B = 'test-key-b-0a1b2c3d4e5f6071';
const A = principalIdOf(KEY_A);
const B = principalIdOf(KEY_B);
const auth = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });

function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  return http(`${url}/v1/inference`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

/** An SSE response read as it arrives. */
interface OpenStream {
  status: Promise<number>;
  events(): SseMessage[];
  close(): void;
}

function openStream(url: string, headers: Record<string, string> = {}): OpenStream {
  let body = '';
  let res: IncomingMessage | undefined;
  const req = request(url, { headers: { accept: 'text/event-stream', ...headers } });
  const status = new Promise<number>((resolve, reject) => {
    req.on('response', (r) => {
      res = r;
      r.on('data', (c: Buffer) => (body += c.toString()));
      resolve(r.statusCode!);
    });
    req.on('error', reject);
  });
  req.end();
  return {
    status,
    events: () => parseSse(body),
    close: () => {
      res?.destroy();
      req.destroy();
    },
  };
}

describe('without API_KEYS', () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await spawnServer({ API_KEYS: '' });
  }, 30_000);
  afterAll(() => server?.stop('SIGKILL'));

  test('the server warns loudly, in a pino warning of several lines, that it is open', async () => {
    await waitFor(() => /THIS SERVER IS OPEN/.test(server.output()), 5000, 'the open-mode warning');
    const entry = server
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { level: number; msg: string })
      .find((l) => l.msg.includes('THIS SERVER IS OPEN'))!;
    expect(entry.level).toBe(40);
    const out = entry.msg;
    const warning = out.split('\n').filter((l) => l.startsWith('!!'));
    expect(warning.length).toBeGreaterThanOrEqual(4);
    expect(out).toMatch(/anyone who can reach 127\.0\.0\.1:\d+ can submit jobs and list, read, stream/i);
    expect(out).toMatch(/cancel EVERY job/);
    expect(out).toMatch(/Set API_KEYS=/);
  });

  test('open: any client lists, reads and cancels every job, and sse_url carries no token', async () => {
    const res = await post(server.url, { prompt: 'open job', max_tokens: 1000, delay_ms: 20 });
    expect(res.status).toBe(202);
    const { job_id, sse_url } = JSON.parse(res.body);
    expect(sse_url).toBe(`/v1/inference/${job_id}/stream`);
    const list = JSON.parse((await http(`${server.url}/v1/jobs`)).body) as { job_id: string }[];
    expect(list.map((j) => j.job_id)).toContain(job_id);
    expect((await http(`${server.url}/v1/inference/${job_id}`, { method: 'DELETE' })).status).toBe(200);
  });
});

describe('with API_KEYS', () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await spawnServer({
      API_KEYS: `${KEY_A}, ${KEY_B}`,
      STREAM_TOKEN_SECRET: 'a-shared-secret-of-at-least-32-characters!',
      STREAM_TOKEN_TTL_MS: '3000',
    });
  }, 30_000);
  afterAll(() => server?.stop('SIGKILL'));

  test('no open-mode warning; the log names the principals, never the keys', async () => {
    await waitFor(() => server.output().includes('API keys: 2'), 5000, 'the key line');
    const out = server.output();
    expect(out).not.toMatch(/THIS SERVER IS OPEN/);
    expect(out).toContain(A);
    expect(out).toContain(B);
    expect(out).not.toContain(KEY_A);
    expect(out).not.toContain(KEY_B);
    expect(A).toMatch(/^key-[0-9a-f]{8}$/);
    expect(A).not.toBe(B);
  });

  test('401 without a key (or with a wrong one) on every API route; the page, assets and probes stay public', async () => {
    const { job_id } = JSON.parse((await post(server.url, { prompt: 'a b' }, auth(KEY_A))).body);
    const needKey: [string, string][] = [
      ['GET', '/v1/jobs'],
      ['GET', '/v1/events'],
      ['POST', '/v1/inference'],
      ['GET', `/v1/inference/${job_id}`],
      ['DELETE', `/v1/inference/${job_id}`],
      ['GET', `/v1/inference/${job_id}/stream`],
      ['POST', '/v1/responses'],
      ['GET', `/v1/responses/resp_${job_id}`],
      ['POST', `/v1/responses/resp_${job_id}/cancel`],
      ['GET', '/metrics'],
      ['GET', '/no/such/route'],
    ];
    for (const headers of [{}, auth('wrong-key-0000000000000000'), { authorization: KEY_A }]) {
      for (const [method, path] of needKey) {
        const res = await http(server.url + path, {
          method,
          headers: { 'content-type': 'application/json', ...headers },
          ...(method === 'POST' ? { body: '{"prompt":"x"}' } : {}),
        });
        expect([method, path, res.status]).toEqual([method, path, 401]);
        expect(res.headers['www-authenticate']).toBe('Bearer');
        expect(JSON.parse(res.body).error.code).toBe('UNAUTHENTICATED');
      }
    }
    expect(server.output()).not.toContain('wrong-key');
    for (const path of [
      '/',
      '/index.html',
      '/assets/dashboard.js',
      '/assets/client.js',
      '/assets/style.css',
      '/healthz',
      '/readyz',
    ])
      expect([path, (await http(server.url + path)).status]).toEqual([path, 200]);
    expect((await http(`${server.url}/assets/no-such-file.js`)).status).toBe(404);
    expect(await http(`${server.url}/healthz`)).toMatchObject({ status: 200, body: '{"ok":true}' });
    expect((await http(`${server.url}/readyz`)).status).toBe(200);
    // The job nobody may touch without a key is untouched.
    expect((await http(`${server.url}/v1/inference/${job_id}`, { headers: auth(KEY_A) })).status).toBe(200);
  });

  test("key A cannot read, stream or cancel key B's job: 404, exactly as for an unknown job", async () => {
    const res = await post(server.url, { prompt: 'b only', max_tokens: 1000, delay_ms: 20 }, auth(KEY_B));
    expect(res.status).toBe(202);
    const { job_id, sse_url } = JSON.parse(res.body);
    const unknown = 'job-00000000-0000-4000-8000-000000000000';
    const asUnknown = async (method: string, path: string): Promise<void> => {
      const theirs = await http(server.url + path.replace('{id}', job_id), { method, headers: auth(KEY_A) });
      const none = await http(server.url + path.replace('{id}', unknown), { method, headers: auth(KEY_A) });
      expect([method, path, theirs.status]).toEqual([method, path, 404]);
      expect(JSON.parse(theirs.body).error.code).toBe('JOB_NOT_FOUND');
      expect(JSON.parse(theirs.body.replaceAll(job_id, unknown))).toEqual(JSON.parse(none.body));
    };
    await asUnknown('GET', '/v1/inference/{id}');
    await asUnknown('GET', '/v1/inference/{id}/stream');
    await asUnknown('DELETE', '/v1/inference/{id}');
    // A's header wins over B's token in the URL: still not A's job.
    const withToken = await http(server.url + sse_url, { headers: auth(KEY_A) });
    expect(withToken.status).toBe(404);
    // B's job ran on, untouched by A's DELETE; B may cancel it.
    const mine = JSON.parse(
      (await http(`${server.url}/v1/inference/${job_id}`, { headers: auth(KEY_B) })).body,
    );
    expect(mine).toMatchObject({ job_id, state: 'running', owner: B });
    const del = await http(`${server.url}/v1/inference/${job_id}`, {
      method: 'DELETE',
      headers: auth(KEY_B),
    });
    expect(del.status).toBe(200);
    expect(JSON.parse(del.body).state).toBe('cancelled');
  });

  test('/v1/jobs and /v1/events show each key only its own jobs: snapshot and every later event', async () => {
    const before = JSON.parse((await post(server.url, { prompt: 'b before' }, auth(KEY_B))).body).job_id;
    const mineBefore = JSON.parse((await post(server.url, { prompt: 'a before' }, auth(KEY_A))).body).job_id;
    const events = openStream(`${server.url}/v1/events`, auth(KEY_A));
    expect(await events.status).toBe(200);
    try {
      await waitFor(() => events.events().some((e) => e.event === 'snapshot'), 5000, 'the snapshot');
      const snapshot = JSON.parse(events.events().find((e) => e.event === 'snapshot')!.data) as {
        job_id: string;
        owner: string;
      }[];
      expect(snapshot.map((j) => j.job_id)).toContain(mineBefore);
      expect(snapshot.map((j) => j.job_id)).not.toContain(before);
      expect(new Set(snapshot.map((j) => j.owner))).toEqual(new Set([A]));

      const theirs = JSON.parse((await post(server.url, { prompt: 'b after x y' }, auth(KEY_B))).body).job_id;
      const mine = JSON.parse((await post(server.url, { prompt: 'a after x y' }, auth(KEY_A))).body).job_id;
      await waitFor(
        () =>
          events
            .events()
            .some(
              (e) =>
                e.event === 'stateChanged' &&
                JSON.parse(e.data).job_id === mine &&
                JSON.parse(e.data).to === 'completed',
            ),
        5000,
        "A's job to complete on A's event stream",
      );
      // B's job ran to its end too, before A's, yet none of its events reached A.
      await waitFor(
        async () =>
          JSON.parse((await http(`${server.url}/v1/inference/${theirs}`, { headers: auth(KEY_B) })).body)
            .state === 'completed',
        5000,
        "B's job to complete",
      );
      // A fixed wait, as the check is that none of B's events reaches A, even late.
      await sleep(100);
      const seen = events
        .events()
        .filter((e) => e.event !== 'snapshot')
        .map((e) => JSON.parse(e.data) as { job_id: string });
      expect(seen.map((e) => e.job_id)).toContain(mine);
      expect(seen.map((e) => e.job_id)).not.toContain(theirs);
      for (const e of seen) expect([mine, mineBefore]).toContain(e.job_id);

      const listA = JSON.parse((await http(`${server.url}/v1/jobs`, { headers: auth(KEY_A) })).body) as {
        job_id: string;
        owner: string;
      }[];
      const listB = JSON.parse((await http(`${server.url}/v1/jobs`, { headers: auth(KEY_B) })).body) as {
        job_id: string;
        owner: string;
      }[];
      expect(listA.map((j) => j.job_id)).toEqual(expect.arrayContaining([mine, mineBefore]));
      expect(listB.map((j) => j.job_id)).toEqual(expect.arrayContaining([theirs, before]));
      expect(new Set(listA.map((j) => j.owner))).toEqual(new Set([A]));
      expect(new Set(listB.map((j) => j.owner))).toEqual(new Set([B]));
    } finally {
      events.close();
    }
  });

  test('the signed sse_url streams to a plain EventSource, without any header', async () => {
    const res = await post(
      server.url,
      { prompt: 'signed stream works', max_tokens: 6, delay_ms: 10 },
      auth(KEY_A),
    );
    const { job_id, sse_url } = JSON.parse(res.body);
    expect(sse_url).toMatch(
      new RegExp(`^/v1/inference/${job_id}/stream\\?token=[0-9a-z]+\\.[\\w-]+\\.[\\w-]+$`),
    );
    const tokens: string[] = [];
    const es = new EventSource(server.url + sse_url);
    const end = await new Promise<string>((resolve) => {
      es.addEventListener('token', (e) => tokens.push(JSON.parse(e.data) as string));
      es.addEventListener('done', () => resolve('done'));
      es.addEventListener('error', (e) => resolve(`error ${(e as { code?: number }).code ?? ''}`));
    });
    es.close();
    expect(end).toBe('done');
    expect(tokens).toEqual(['signed', 'stream', 'works', 'signed', 'stream', 'works']);
  });

  test('a forged, altered, moved or expired stream token gets 401', async () => {
    const { job_id, sse_url } = JSON.parse(
      (await post(server.url, { prompt: 'x y z', max_tokens: 1000, delay_ms: 20 }, auth(KEY_A))).body,
    );
    const other = JSON.parse((await post(server.url, { prompt: 'other', max_tokens: 3 }, auth(KEY_A))).body);
    const token = new URL(server.url + sse_url).searchParams.get('token')!;
    const [expiry, who, mac] = token.split('.') as [string, string, string];
    const flip = (s: string, i: number): string =>
      s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    const bToken = Buffer.from(B).toString('base64url');
    const path = `/v1/inference/${job_id}/stream?token=`;
    const refused = [
      `${expiry}.${who}.${flip(mac, 5)}`, // altered MAC
      `${(parseInt(expiry, 36) + 60_000).toString(36)}.${who}.${mac}`, // a later expiry
      `${expiry}.${bToken}.${mac}`, // another principal
      `${expiry}.${who}`, // truncated
      'forged',
    ];
    for (const t of refused) {
      const res = await http(server.url + path + t);
      expect([t, res.status]).toEqual([t, 401]);
    }
    // A token signed for one job does not open another.
    const moved = new URL(server.url + other.sse_url).searchParams.get('token')!;
    expect((await http(server.url + path + moved)).status).toBe(401);
    // The genuine one opens (checked with HEAD, so the stream does not stay open).
    expect((await http(server.url + sse_url, { method: 'HEAD' })).status).toBe(200);
    // STREAM_TOKEN_TTL_MS is 3 s here: the same URL is refused once it expired.
    await waitFor(
      async () => (await http(server.url + sse_url, { method: 'HEAD' })).status === 401,
      15_000,
      'the stream token to expire',
    );
    await http(`${server.url}/v1/inference/${job_id}`, { method: 'DELETE', headers: auth(KEY_A) });
  }, 15_000);
});

describe('redaction', () => {
  test("a private executor error reaches clients as 'job failed' and the log in full, once; a public one as is", async () => {
    const lines: string[] = [];
    const log = (m: string): void => void lines.push(m);
    const server = await startServer({ port: 0, logger: { info: log, warn: log, error: log } });
    try {
      const { registry } = server;
      const secret = registry.createJob();
      registry
        .executeAndStream(secret, () => throwError(() => new Error('db password hunter2 rejected')))
        .subscribe({ error: () => undefined });
      const res = await http(`${server.url}/v1/inference/${secret}`);
      expect(JSON.parse(res.body)).toMatchObject({ state: 'failed', error: 'job failed' });
      const list = (await http(`${server.url}/v1/jobs`)).body;
      expect(list).not.toContain('hunter2');
      const stream = parseSse((await http(`${server.url}/v1/inference/${secret}/stream`)).body);
      expect(JSON.parse(stream.at(-1)!.data)).toEqual({ state: 'failed', error: 'job failed' });

      const { job_id, sse_url } = JSON.parse(
        (await post(server.url, { prompt: 'a b c', fail_after: 1 })).body,
      );
      const pub = parseSse((await http(server.url + sse_url)).body);
      expect(JSON.parse(pub.at(-1)!.data)).toEqual({ state: 'failed', error: 'simulated failure' });
      const about = (id: string): string[] => lines.filter((l) => l.includes(id));
      await waitFor(() => about(job_id).length > 0, 5000, 'the failure logged');
      // Each failure is logged once: a later job's failure line is the barrier, as a second line about
      // either job would come before it.
      const barrier = registry.createJob();
      registry
        .executeAndStream(barrier, () => throwError(() => new Error('a later failure')))
        .subscribe({ error: () => undefined });
      await waitFor(() => about(barrier).length > 0, 5000, 'a later failure logged');
      expect(about(secret)).toHaveLength(1);
      expect(about(secret)[0]).toMatch(/failed: Error: db password hunter2 rejected/);
      expect(about(job_id)).toEqual([`inference-server: job ${job_id} failed: simulated failure`]);
    } finally {
      await server.close();
    }
  });
});
