/**
 * The AI SDK chat routes with the real `ai` package as the client: an `AbstractChat` over
 * `JobChatTransport`, against both handler forms on a real HTTP server, on every backend that keeps job
 * keys (two servers on one Redis: a second client reaches another process). The model is `ai/test`'s mock
 * behind `streamText`.
 */
import { JobChatTransport } from '../../src/ai-sdk/client.js';
import { waitFor } from '../helpers/collect.js';
import {
  TestChat,
  chatBackends,
  startChat,
  textOf,
  wordModel,
  type ChatStack,
  type ModelEvents,
} from '../helpers/chat.js';
import { http } from '../helpers/http.js';

const ANSWER = 'one two three four five six seven eight nine ten eleven twelve';
/** A model slow enough to be caught mid-answer: a word every 30 ms (about 360 ms for the answer). */
const DELAY_MS = 30;

const backends = await chatBackends();
const forms = ['node', 'fetch'] as const;

describe.each(backends)('AI SDK chat (%s)', (backend) => {
  describe.each(forms)('%s handler', (form) => {
    let stack: ChatStack;
    let events: ModelEvents;
    beforeEach(async () => {
      const model = wordModel(DELAY_MS);
      events = model.events;
      stack = await startChat(form, backend, { execute: model.execute, heartbeatMs: 0 });
    });
    afterEach(() => stack.close());

    const chatOn = (server: 0 | 1, id: string, messages: TestChat['messages'] = []): TestChat =>
      new TestChat({
        id,
        messages,
        transport: new JobChatTransport({ api: `${stack.urls[server]}/api/chat` }),
      });
    const assistant = (chat: TestChat) => chat.messages.find((m) => m.role === 'assistant');

    test('a message streams into the chat, and the chat ends ready', async () => {
      const chat = chatOn(0, 'chat-a');
      await chat.sendMessage({ text: ANSWER });
      expect(chat.status).toBe('ready');
      expect(chat.error).toBeUndefined();
      expect(chat.messages.map((m) => m.role)).toEqual(['user', 'assistant']);
      expect(textOf(assistant(chat))).toBe(ANSWER);
      // The answer was a job keyed by the chat id (an open handler: the id alone).
      const jobs = await stack.registries[0]!.listJobs();
      expect(jobs).toEqual([expect.objectContaining({ key: 'chat-a', state: 'completed' })]);
      expect(events.aborted).toBeUndefined();
    });

    test('a reload mid-answer, then resumeStream(): the whole answer, exact text, same message id', async () => {
      const first = chatOn(0, 'chat-r');
      const sent = first.sendMessage({ text: ANSWER });
      await waitFor(() => textOf(assistant(first)).split(' ').length >= 3, 5000, 'three words');
      // The page reloads: a new chat object with the messages the app kept, resuming on the other server.
      const reloaded = chatOn(1, 'chat-r', [first.messages[0]!]);
      await reloaded.resumeStream();
      await sent;
      expect(reloaded.status).toBe('ready');
      expect(reloaded.error).toBeUndefined();
      expect(textOf(assistant(reloaded))).toBe(ANSWER);
      expect(assistant(reloaded)!.id).toBe(assistant(first)!.id);
      expect(reloaded.messages).toHaveLength(2);
      expect(events.aborted).toBeUndefined();
    });

    test.each([
      ['the same client', 0],
      ['another client', 1],
    ] as const)(
      'stop from %s: the model is aborted and its stream cancelled within 100 ms; onEnd sees isAborted',
      async (_, stopper) => {
        const chat = chatOn(0, 'chat-s');
        const sent = chat.sendMessage({ text: ANSWER });
        await waitFor(() => textOf(assistant(chat)).split(' ').length >= 2, 5000, 'two words');
        const transport = new JobChatTransport({ api: `${stack.urls[stopper]}/api/chat` });
        const t0 = performance.now();
        expect(await transport.stop('chat-s')).toBe(true);
        await waitFor(
          () => events.cancelled !== undefined && events.aborted !== undefined,
          2000,
          'the abort',
        );
        expect(events.aborted! - t0).toBeLessThan(100);
        expect(events.cancelled! - t0).toBeLessThan(100);
        await sent;
        expect(chat.status).toBe('ready');
        expect(chat.error).toBeUndefined();
        const partial = textOf(assistant(chat));
        expect(ANSWER.startsWith(partial)).toBe(true);
        expect(partial.length).toBeLessThan(ANSWER.length);
        // streamText finished its own way: its onEnd saw the abort and the partial text.
        await waitFor(() => events.ends.length === 1, 2000, 'onEnd');
        expect(events.ends[0]!.isAborted).toBe(true);
        expect(ANSWER.startsWith(textOf(events.ends[0]!.responseMessage))).toBe(true);
        expect(textOf(events.ends[0]!.responseMessage).length).toBeGreaterThanOrEqual(partial.length);
        // Nothing is live any more: a second stop stops nothing.
        expect(await transport.stop('chat-s')).toBe(false);
      },
    );

    test('a second resumeStream() while one is open does not stop the answer', async () => {
      const first = chatOn(0, 'chat-2r');
      const sent = first.sendMessage({ text: ANSWER });
      await waitFor(() => textOf(assistant(first)).length > 0, 5000, 'the first word');
      const reloaded = chatOn(1, 'chat-2r', [first.messages[0]!]);
      const resumed = reloaded.resumeStream();
      await waitFor(() => reloaded.status === 'streaming', 5000, 'the resumed stream');
      // The SDK aborts the first resume's request (the transport's abort signal): only a disconnect.
      const again = reloaded.resumeStream();
      await Promise.all([resumed, again, sent]);
      expect(events.aborted).toBeUndefined();
      expect(textOf(assistant(reloaded))).toBe(ANSWER);
      expect(textOf(assistant(first))).toBe(ANSWER);
      expect(reloaded.status).toBe('ready');
      const jobs = await stack.registries[0]!.listJobs();
      expect(jobs.map((j) => j.state)).toEqual(['completed']);
    });

    test('nothing live: 204 on GET and DELETE, and resumeStream() leaves the chat ready', async () => {
      const get = await http(`${stack.urls[0]}/api/chat/chat-none/stream`);
      expect([get.status, get.body]).toEqual([204, '']);
      const del = await http(`${stack.urls[1]}/api/chat/chat-none/stream`, { method: 'DELETE' });
      expect([del.status, del.body]).toEqual([204, '']);
      const chat = chatOn(0, 'chat-none');
      await chat.resumeStream();
      expect(chat.status).toBe('ready');
      expect(chat.messages).toEqual([]);
      // A finished answer is not live either.
      await chat.sendMessage({ text: 'short' });
      expect((await http(`${stack.urls[1]}/api/chat/chat-none/stream`)).status).toBe(204);
      const again = chatOn(1, 'chat-none', chat.messages);
      await again.resumeStream();
      expect(again.status).toBe('ready');
      expect(again.messages).toEqual(chat.messages);
    });
  });
});
