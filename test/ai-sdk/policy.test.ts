/**
 * The chat routes under the one policy: credentials (401), tenancy (another principal's chat is not live
 * for the caller: 204, and a stop of it stops nothing), quotas and stream limits (429), bad input (4xx,
 * nothing left behind), CORS only from the option, drain (503), methods and routes. Both handler forms,
 * every backend that keeps job keys.
 */
import type { UIMessageChunk } from 'ai';
import { PublicError } from '../../src/core/index.js';
import type { ChatRequest } from '../../src/ai-sdk/index.js';
import { waitFor } from '../helpers/collect.js';
import { chatBackends, startChat, type ChatStack } from '../helpers/chat.js';
import { http, openResponse, rawRequest, type Answer, type OpenResponse } from '../helpers/http.js';

const backends = await chatBackends();
const forms = ['node', 'fetch'] as const;
const ALICE = { authorization: 'Bearer alice' };
const BOB = { authorization: 'Bearer bob' };
const ORIGIN = 'https://app.example';
const json = { 'content-type': 'application/json' };

function body(id: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    id,
    messages: [{ id: 'u1', role: 'user', parts: [{ type: 'text', text: 'hi' }] }],
    trigger: 'submit-message',
    ...extra,
  });
}

/** An answer that runs until it is stopped; `aborted` counts the stops its executor saw. */
function liveModel() {
  const seen = { aborted: 0 };
  const execute = async function* (
    _: ChatRequest,
    { signal }: { signal: AbortSignal },
  ): AsyncGenerator<UIMessageChunk> {
    signal.addEventListener('abort', () => seen.aborted++, { once: true });
    yield { type: 'start' };
    yield { type: 'text-start', id: 't' };
    yield { type: 'text-delta', id: 't', delta: 'live' };
    await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
  };
  return { seen, execute };
}

const error = (a: Answer): [number, string | undefined] => {
  try {
    return [a.status, (JSON.parse(a.body) as { error?: { code?: string } }).error?.code];
  } catch {
    return [a.status, undefined];
  }
};

describe.each(backends)('the chat routes under the one policy (%s)', (backend) => {
  describe.each(forms)('%s handler', (form) => {
    let stack: ChatStack;
    let model: ReturnType<typeof liveModel>;
    const open: OpenResponse[] = [];
    beforeEach(async () => {
      model = liveModel();
      stack = await startChat(form, backend, {
        execute: model.execute,
        heartbeatMs: 0,
        maxJobsPerPrincipal: 2,
        maxStreamsPerPrincipal: 2,
        maxBodyBytes: 2048,
        cors: { origin: [ORIGIN], credentials: true },
        logger: { error: () => undefined, warn: () => undefined },
        authenticate: (h) =>
          h === 'Bearer alice' ? { id: 'alice' } : h === 'Bearer bob' ? { id: 'bob' } : undefined,
        toPayload: (request) => {
          if (request.refuse === true) throw new PublicError('this chat is closed');
          return request;
        },
      });
    });
    afterEach(async () => {
      for (const r of open.splice(0)) r.close();
      await stack.close();
    });

    /** Starts a chat's answer as `who` and keeps its stream open. */
    async function start(id: string, who: Record<string, string>, server: 0 | 1 = 0): Promise<OpenResponse> {
      const r = await openResponse(`${stack.urls[server]}/api/chat`, {
        method: 'POST',
        headers: { ...json, ...who },
        body: body(id),
      });
      open.push(r);
      expect(r.status).toBe(200);
      await waitFor(() => r.text().includes('live'), 5000, 'the answer');
      return r;
    }
    const live = async (): Promise<number> =>
      (await stack.registries[0]!.listJobs()).filter((j) => j.state === 'running' || j.state === 'queued')
        .length;

    test('no credentials: 401 on every route', async () => {
      await start('c1', ALICE);
      for (const [method, path] of [
        ['POST', '/api/chat'],
        ['GET', '/api/chat/c1/stream'],
        ['DELETE', '/api/chat/c1/stream'],
      ] as const) {
        const a = await http(stack.urls[1] + path, {
          method,
          headers: json,
          ...(method === 'POST' ? { body: body('c2') } : {}),
        });
        expect([method, ...error(a)]).toEqual([method, 401, 'UNAUTHENTICATED']);
      }
      expect(await live()).toBe(1);
    });

    test("another principal's chat is not live for the caller: GET and DELETE 204, nothing stopped", async () => {
      const alices = await start('c1', ALICE);
      const get = await http(`${stack.urls[1]}/api/chat/c1/stream`, { headers: BOB });
      expect([get.status, get.body]).toEqual([204, '']);
      const del = await http(`${stack.urls[1]}/api/chat/c1/stream`, { method: 'DELETE', headers: BOB });
      expect([del.status, del.body]).toEqual([204, '']);
      expect(model.seen.aborted).toBe(0);
      // The same chat id is Bob's own chat, beside Alice's: keys are scoped by principal.
      await start('c1', BOB, 1);
      const keys = (await stack.registries[0]!.listJobs()).map((j) => [j.key, j.owner, j.state]);
      expect(keys.sort()).toEqual([
        ['alice/c1', 'alice', 'running'],
        ['bob/c1', 'bob', 'running'],
      ]);
      // Alice's own GET finds hers; her stop stops hers alone.
      const mine = await openResponse(`${stack.urls[1]}/api/chat/c1/stream`, { headers: ALICE });
      open.push(mine);
      expect(mine.status).toBe(200);
      const stop = await http(`${stack.urls[0]}/api/chat/c1/stream`, { method: 'DELETE', headers: ALICE });
      expect(JSON.parse(stop.body)).toMatchObject({ key: 'alice/c1', state: 'cancelled' });
      await alices.ended;
      expect(await live()).toBe(1);
    });

    test('the job quota counts chat answers: 429 with Retry-After, nothing left behind', async () => {
      await start('q1', ALICE);
      await start('q2', ALICE);
      // The quota is each process's (on Redis the two servers are two processes): ask the one that holds them.
      const over = await http(`${stack.urls[0]}/api/chat`, {
        method: 'POST',
        headers: { ...json, ...ALICE },
        body: body('q3'),
      });
      expect(error(over)).toEqual([429, 'CAPACITY']);
      expect(over.headers['retry-after']).toBe('5');
      expect(await live()).toBe(2);
      await start('q3', BOB);
    });

    test('the stream limit counts chat streams: 429 on GET, and a refused POST leaves no answer', async () => {
      await start('l1', ALICE);
      const second = await openResponse(`${stack.urls[0]}/api/chat/l1/stream`, { headers: ALICE });
      open.push(second);
      expect(second.status).toBe(200);
      const third = await http(`${stack.urls[0]}/api/chat/l1/stream`, { headers: ALICE });
      expect(error(third)).toEqual([429, 'CAPACITY']);
      const refused = await http(`${stack.urls[0]}/api/chat`, {
        method: 'POST',
        headers: { ...json, ...ALICE },
        body: body('l2'),
      });
      expect(error(refused)).toEqual([429, 'CAPACITY']);
      expect(await live()).toBe(1);
    });

    test('bad input: a 4xx JSON error, and no job left behind', async () => {
      const post = (b: string, headers: Record<string, string> = json) =>
        http(`${stack.urls[0]}/api/chat`, { method: 'POST', headers: { ...headers, ...ALICE }, body: b });
      expect(error(await post('{"id": "x", '))).toEqual([400, 'INVALID_JSON']);
      expect(error(await post('[]'))).toEqual([400, 'INVALID_PAYLOAD']);
      expect(error(await post(JSON.stringify({ messages: [] })))).toEqual([400, 'INVALID_PAYLOAD']);
      expect(error(await post(JSON.stringify({ id: 'c1' })))).toEqual([400, 'INVALID_PAYLOAD']);
      expect(error(await post(JSON.stringify({ id: 'c1', messages: ['hi'] })))).toEqual([
        400,
        'INVALID_PAYLOAD',
      ]);
      expect(error(await post(body('c1', { trigger: 'resume' })))).toEqual([400, 'INVALID_PAYLOAD']);
      for (const id of ['a/b', '..', 'x'.repeat(129), '', 7])
        expect(error(await post(body('c1', { id })))).toEqual([400, 'INVALID_CHAT_ID']);
      const refused = await post(body('c1', { refuse: true }));
      expect(error(refused)).toEqual([400, 'INVALID_PAYLOAD']);
      expect(JSON.parse(refused.body).error.message).toContain('this chat is closed');
      expect(error(await post(body('c1', { pad: 'x'.repeat(4096) })))).toEqual([413, 'PAYLOAD_TOO_LARGE']);
      expect(error(await post(body('c1'), { 'content-type': 'text/plain' }))).toEqual([
        415,
        'UNSUPPORTED_MEDIA_TYPE',
      ]);
      for (const path of ['/api/chat/a%20b/stream', '/api/chat/%2F/stream', '/api/chat//stream'])
        expect(error(await http(stack.urls[0] + path, { headers: ALICE }))).toEqual([400, 'INVALID_CHAT_ID']);
      // A dot segment is refused, never normalized into another route (the fetch form's URL parser
      // resolves it before the handler sees it).
      if (form === 'node') {
        const port = new URL(stack.urls[0]).port;
        const raw = await rawRequest(
          Number(port),
          'GET /api/chat/%2e%2e/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\nConnection: close\r\n\r\n',
        );
        expect(raw).toMatch(/^HTTP\/1\.1 400 [^]*"INVALID_PATH"/);
      }
      expect(await stack.registries[0]!.listJobs()).toEqual([]);
    });

    test('methods and routes: 405 with Allow, 404 off the routes', async () => {
      const put = await http(`${stack.urls[0]}/api/chat`, { method: 'PUT', headers: ALICE });
      expect([...error(put), put.headers.allow]).toEqual([405, 'METHOD_NOT_ALLOWED', 'POST']);
      const post = await http(`${stack.urls[0]}/api/chat/c1/stream`, { method: 'POST', headers: ALICE });
      expect([...error(post), post.headers.allow]).toEqual([405, 'METHOD_NOT_ALLOWED', 'GET, DELETE']);
      expect(error(await http(`${stack.urls[0]}/api/chat/c1`, { headers: ALICE }))).toEqual([
        404,
        'NOT_FOUND',
      ]);
      expect(error(await http(`${stack.urls[0]}/api/chat/c1/stream/x`, { headers: ALICE }))).toEqual([
        404,
        'NOT_FOUND',
      ]);
      expect(error(await http(`${stack.urls[0]}/elsewhere`, { headers: ALICE }))).toEqual([404, 'NOT_FOUND']);
    });

    test('CORS headers come only from the cors option, on every route and preflight', async () => {
      const ok = await openResponse(`${stack.urls[0]}/api/chat`, {
        method: 'POST',
        headers: { ...json, ...ALICE, origin: ORIGIN },
        body: body('o1'),
      });
      open.push(ok);
      expect(ok.headers['access-control-allow-origin']).toBe(ORIGIN);
      expect(ok.headers['access-control-allow-credentials']).toBe('true');
      expect(ok.headers['access-control-expose-headers']).toContain('x-vercel-ai-ui-message-stream');
      for (const [method, path] of [
        ['GET', '/api/chat/o1/stream'],
        ['DELETE', '/api/chat/o9/stream'],
      ] as const) {
        for (const [origin, allowed] of [
          [ORIGIN, ORIGIN],
          ['https://evil.example', undefined],
        ] as const) {
          const r = await openResponse(stack.urls[0] + path, { method, headers: { ...ALICE, origin } });
          r.close();
          expect([path, r.status < 300, r.headers['access-control-allow-origin']]).toEqual([
            path,
            true,
            allowed,
          ]);
        }
      }
      for (const path of ['/api/chat', '/api/chat/o1/stream']) {
        const pre = await http(stack.urls[0] + path, {
          method: 'OPTIONS',
          headers: { origin: ORIGIN, 'access-control-request-method': 'POST' },
        });
        expect([path, pre.status, pre.headers['access-control-allow-origin']]).toEqual([path, 204, ORIGIN]);
        const evil = await http(stack.urls[0] + path, {
          method: 'OPTIONS',
          headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
        });
        expect(evil.headers['access-control-allow-methods']).toBeUndefined();
      }
    });
  });
});

describe.each(backends)('the chat routes while draining (%s)', (backend) => {
  test.each(forms)('%s: a new answer is 503 with Retry-After; resume and stop go on', async (form) => {
    const model = liveModel();
    const stack = await startChat(form, backend, { execute: model.execute, heartbeatMs: 0 });
    try {
      const first = await openResponse(`${stack.urls[0]}/api/chat`, {
        method: 'POST',
        headers: json,
        body: body('d1'),
      });
      await waitFor(() => first.text().includes('live'), 5000, 'the answer');
      stack.drain();
      const refused = await http(`${stack.urls[0]}/api/chat`, {
        method: 'POST',
        headers: json,
        body: body('d2'),
      });
      expect(error(refused)).toEqual([503, 'DRAINING']);
      expect(refused.headers['retry-after']).toBe('5');
      const resumed = await openResponse(`${stack.urls[1]}/api/chat/d1/stream`);
      expect(resumed.status).toBe(200);
      expect((await http(`${stack.urls[1]}/api/chat/d1/stream`, { method: 'DELETE' })).status).toBe(200);
      await Promise.all([first.ended, resumed.ended]);
    } finally {
      await stack.close();
    }
  });
});
