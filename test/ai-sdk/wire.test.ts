/**
 * The UI message stream on the wire, read as raw HTTP: every `data:` line a chunk the AI SDK's own schema
 * accepts, ids that count up, `[DONE]` last; how failures and stops end it; resuming after Last-Event-ID;
 * a disconnect that is only a disconnect; a second answer of a live chat (keyConflict). Both handler forms,
 * every backend that keeps job keys.
 */
import { asSchema, uiMessageChunkSchema, type UIMessageChunk } from 'ai';
import { PublicError } from '../../src/core/index.js';
import type { ChatRequest } from '../../src/ai-sdk/index.js';
import { waitFor } from '../helpers/collect.js';
import { chatBackends, startChat, wordModel, type ChatStack } from '../helpers/chat.js';
import { http, openResponse, parseSse, type OpenResponse } from '../helpers/http.js';

const backends = await chatBackends();
const forms = ['node', 'fetch'] as const;
const json = { 'content-type': 'application/json' };
const schema = asSchema(uiMessageChunkSchema);

/** A chat request as `DefaultChatTransport` sends it, with a `mode` for the executor below. */
function body(id: string, mode: string, text = 'alpha beta gamma'): string {
  return JSON.stringify({
    id,
    messages: [{ id: 'u1', role: 'user', parts: [{ type: 'text', text }] }],
    trigger: 'submit-message',
    mode,
  });
}

/** Chunks up to a first delta, then nothing until the job's signal aborts. */
async function* hanging(signal: AbortSignal): AsyncGenerator<UIMessageChunk> {
  yield { type: 'start' };
  yield { type: 'text-start', id: 't' };
  yield { type: 'text-delta', id: 't', delta: 'partial' };
  await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
}

async function* failing(error: Error): AsyncGenerator<UIMessageChunk> {
  yield { type: 'start' };
  throw error;
}

/** Each executor by the request's `mode`. */
function executor() {
  const words = wordModel(5);
  return (request: ChatRequest, context: { signal: AbortSignal }) => {
    if (request.mode === 'hang') return hanging(context.signal);
    if (request.mode === 'private') return failing(new Error('secret: db password is hunter2'));
    if (request.mode === 'public') return failing(new PublicError('the model is overloaded'));
    return words.execute(request, context as never);
  };
}

/** The `data:` values of a UI message stream, with their ids. */
function events(text: string): Array<{ id?: string; data: string }> {
  return parseSse(text).map(({ id, data }) => (id === undefined ? { data } : { id, data }));
}

describe.each(backends)('the UI message stream on the wire (%s)', (backend) => {
  describe.each(forms)('%s handler', (form) => {
    let stack: ChatStack;
    const open: OpenResponse[] = [];
    beforeEach(async () => {
      stack = await startChat(form, backend, { execute: executor(), heartbeatMs: 0 });
    });
    afterEach(async () => {
      for (const r of open.splice(0)) r.close();
      await stack.close();
    });
    const post = (id: string, mode: string) =>
      http(`${stack.urls[0]}/api/chat`, { method: 'POST', headers: json, body: body(id, mode) });

    test('every data line is a chunk the AI SDK accepts, ids count up, [DONE] comes last', async () => {
      const answer = await post('w1', 'words');
      expect(answer.status).toBe(200);
      expect(answer.headers['content-type']).toMatch(/^text\/event-stream/);
      expect(answer.headers['x-vercel-ai-ui-message-stream']).toBe('v1');
      const all = events(answer.body);
      expect(all.at(-1)).toEqual({ data: '[DONE]' });
      const chunks = all.slice(0, -1);
      expect(chunks.map((e) => e.id)).toEqual(chunks.map((_, i) => String(i)));
      for (const e of chunks) {
        const checked = await schema.validate!(JSON.parse(e.data));
        expect([e.data, checked.success]).toEqual([e.data, true]);
      }
      const parsed = chunks.map((e) => JSON.parse(e.data) as UIMessageChunk);
      // The start chunk names the assistant message: the job's id, the same for every reader.
      const [job] = await stack.registries[0]!.listJobs();
      expect(parsed[0]).toEqual({ type: 'start', messageId: job!.id });
      const text = parsed.map((c) => (c.type === 'text-delta' ? c.delta : '')).join('');
      expect(text).toBe('alpha beta gamma');
      expect(parsed.at(-1)).toMatchObject({ type: 'finish' });
    });

    test('a private failure shows only "job failed", a public one its message, then [DONE]', async () => {
      const hidden = await post('f1', 'private');
      expect(hidden.status).toBe(200);
      expect(events(hidden.body).slice(-2)).toEqual([
        { id: '1', data: '{"type":"error","errorText":"job failed"}' },
        { data: '[DONE]' },
      ]);
      expect(hidden.body).not.toContain('hunter2');
      const shown = await post('f2', 'public');
      expect(events(shown.body).slice(-2)).toEqual([
        { id: '1', data: '{"type":"error","errorText":"the model is overloaded"}' },
        { data: '[DONE]' },
      ]);
      for (const e of events(hidden.body + shown.body).filter((x) => x.data !== '[DONE]'))
        expect((await schema.validate!(JSON.parse(e.data))).success).toBe(true);
    });

    test('a stop ends the answer and every reader of it with {"type":"abort"}, then [DONE]', async () => {
      const first = await openResponse(`${stack.urls[0]}/api/chat`, {
        method: 'POST',
        headers: json,
        body: body('s1', 'hang'),
      });
      open.push(first);
      await waitFor(() => first.text().includes('partial'), 5000, 'the first delta');
      const resumed = await openResponse(`${stack.urls[1]}/api/chat/s1/stream`);
      open.push(resumed);
      expect(resumed.status).toBe(200);
      await waitFor(() => resumed.text().includes('partial'), 5000, 'the replayed delta');
      const stop = await http(`${stack.urls[1]}/api/chat/s1/stream`, { method: 'DELETE' });
      expect(stop.status).toBe(200);
      expect(JSON.parse(stop.body)).toMatchObject({ state: 'cancelled', key: 's1' });
      await Promise.all([first.ended, resumed.ended]);
      for (const r of [first, resumed])
        expect(events(r.text()).slice(-2)).toEqual([
          { id: '3', data: '{"type":"abort"}' },
          { data: '[DONE]' },
        ]);
    });

    test('GET resumes after Last-Event-ID; a malformed one is 400', async () => {
      const first = await openResponse(`${stack.urls[0]}/api/chat`, {
        method: 'POST',
        headers: json,
        body: body('r1', 'hang'),
      });
      open.push(first);
      await waitFor(() => first.text().includes('partial'), 5000, 'the first delta');
      const after = await openResponse(`${stack.urls[1]}/api/chat/r1/stream`, {
        headers: { 'last-event-id': '1' },
      });
      open.push(after);
      await waitFor(() => after.text().includes('partial'), 5000, 'the delta');
      expect(events(after.text())).toEqual([
        { id: '2', data: '{"type":"text-delta","id":"t","delta":"partial"}' },
      ]);
      const bad = await http(`${stack.urls[1]}/api/chat/r1/stream`, { headers: { 'last-event-id': 'x1' } });
      expect([bad.status, JSON.parse(bad.body).error.code]).toEqual([400, 'INVALID_RESUME_POINT']);
      await http(`${stack.urls[0]}/api/chat/r1/stream`, { method: 'DELETE' });
    });

    test("the client's disconnect is only a disconnect: the answer goes on, and resumes whole", async () => {
      const first = await openResponse(`${stack.urls[0]}/api/chat`, {
        method: 'POST',
        headers: json,
        body: body('d1', 'hang'),
      });
      await waitFor(() => first.text().includes('partial'), 5000, 'the first delta');
      first.close();
      await first.ended;
      const job = (await stack.registries[0]!.listJobs())[0]!;
      // Still live a moment later, and readable from its start.
      const again = await openResponse(`${stack.urls[1]}/api/chat/d1/stream`);
      open.push(again);
      await waitFor(() => again.text().includes('partial'), 5000, 'the replay');
      expect((await stack.registries[0]!.findJob(job.id))?.state).toBe('running');
      expect(events(again.text()).map((e) => e.id)).toEqual(['0', '1', '2']);
      await http(`${stack.urls[0]}/api/chat/d1/stream`, { method: 'DELETE' });
    });

    test('a second POST while the answer is live: 409 JOB_BUSY (keyConflict refuse, the default)', async () => {
      const first = await openResponse(`${stack.urls[0]}/api/chat`, {
        method: 'POST',
        headers: json,
        body: body('k1', 'hang'),
      });
      open.push(first);
      await waitFor(() => first.text().includes('partial'), 5000, 'the first delta');
      const second = await http(`${stack.urls[1]}/api/chat`, {
        method: 'POST',
        headers: json,
        body: body('k1', 'hang'),
      });
      expect([second.status, JSON.parse(second.body).error.code]).toEqual([409, 'JOB_BUSY']);
      expect((await stack.registries[0]!.listJobs()).length).toBe(1);
      await http(`${stack.urls[0]}/api/chat/k1/stream`, { method: 'DELETE' });
    });
  });
});

describe.each(backends)('options of the chat routes (%s)', (backend) => {
  test("keyConflict: 'replace': a new message stops the live answer, whose readers get abort", async () => {
    const stack = await startChat(
      'node',
      backend,
      { execute: executor(), heartbeatMs: 0 },
      { keyConflict: 'replace' },
    );
    try {
      const first = await openResponse(`${stack.urls[0]}/api/chat`, {
        method: 'POST',
        headers: json,
        body: body('k2', 'hang'),
      });
      await waitFor(() => first.text().includes('partial'), 5000, 'the first delta');
      const second = await http(`${stack.urls[1]}/api/chat`, {
        method: 'POST',
        headers: json,
        body: body('k2', 'words'),
      });
      expect(second.status).toBe(200);
      expect(events(second.body).at(-1)).toEqual({ data: '[DONE]' });
      await first.ended;
      expect(events(first.text()).slice(-2)).toEqual([
        { id: '3', data: '{"type":"abort"}' },
        { data: '[DONE]' },
      ]);
    } finally {
      await stack.close();
    }
  });

  test('exposeErrors shows a private failure as it is', async () => {
    const stack = await startChat('fetch', backend, {
      execute: executor(),
      heartbeatMs: 0,
      exposeErrors: true,
    });
    try {
      const answer = await http(`${stack.urls[0]}/api/chat`, {
        method: 'POST',
        headers: json,
        body: body('e1', 'private'),
      });
      expect(events(answer.body).slice(-2)).toEqual([
        { id: '1', data: '{"type":"error","errorText":"secret: db password is hunter2"}' },
        { data: '[DONE]' },
      ]);
    } finally {
      await stack.close();
    }
  });
});
