/**
 * Recipe: an AI SDK chat whose answers survive a reload and stop from any tab. A small server serves
 * `job-registry/ai-sdk`'s chat routes over the recipes' model; the client is the AI SDK's own chat (what
 * `useChat` runs, here without React) over `JobChatTransport`.
 *
 * 1. A message streams in; the chat ends `ready`.
 * 2. The page "reloads" mid-answer: a new chat with the messages the app kept calls `resumeStream()` and
 *    gets the whole answer from its start, under the same message id.
 * 3. Another tab stops an answer (`transport.stop(chatId)`): the model's abort signal fires, and the
 *    chat's stream ends with an `abort` chunk; the chat is `ready`, without an error.
 *
 * Run: npx tsx examples/recipes/ai-sdk-chat.ts
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  AbstractChat,
  type ChatInit,
  type ChatState,
  type ChatStatus,
  type UIMessage,
  type UIMessageChunk,
} from 'ai';
import { concat, map, of, type Observable } from 'rxjs';
import { JobRegistry } from '../../src/core/index.js';
import { createChatHandler, type ChatRequest } from '../../src/ai-sdk/index.js';
import { JobChatTransport } from '../../src/ai-sdk/client.js';
import { model } from './model.js';

/** The chat's state as plain fields (React's `useChat` keeps the same in React state). */
class PlainState implements ChatState<UIMessage> {
  status: ChatStatus = 'ready';
  error: Error | undefined = undefined;
  constructor(public messages: UIMessage[]) {}
  pushMessage = (m: UIMessage): void => void (this.messages = [...this.messages, m]);
  popMessage = (): void => void (this.messages = this.messages.slice(0, -1));
  replaceMessage = (i: number, m: UIMessage): void =>
    void (this.messages = [...this.messages.slice(0, i), structuredClone(m), ...this.messages.slice(i + 1)]);
  snapshot = <T>(thing: T): T => structuredClone(thing);
}

class Chat extends AbstractChat<UIMessage> {
  constructor(init: ChatInit<UIMessage>) {
    super({ ...init, state: new PlainState(init.messages ?? []) });
  }
}

const text = (m: UIMessage | undefined): string =>
  (m?.parts ?? []).map((p) => (p.type === 'text' ? p.text : '')).join('');
const answerOf = (chat: Chat): UIMessage | undefined => chat.messages.find((m) => m.role === 'assistant');

// The server: each answer is a job keyed by its chat id. The model says the user's words back, one every
// 40 ms, as text deltas; a stop unsubscribes it (and aborts `signal`, which a real model's call takes).
let aborts = 0;
function answer(request: ChatRequest, { signal }: { signal: AbortSignal }): Observable<UIMessageChunk> {
  signal.addEventListener('abort', () => aborts++, { once: true });
  const user = request.messages.filter((m) => m.role === 'user').at(-1);
  return concat(
    of<UIMessageChunk[]>({ type: 'start' }, { type: 'text-start', id: 't' }),
    model(text(user), { delayMs: 40 }).pipe(
      map((word, i): UIMessageChunk => ({ type: 'text-delta', id: 't', delta: i === 0 ? word : ` ${word}` })),
    ),
    of<UIMessageChunk[]>({ type: 'text-end', id: 't' }, { type: 'finish', finishReason: 'stop' }),
  );
}

const registry = new JobRegistry<UIMessageChunk, ChatRequest>();
const chat = createChatHandler(registry, { execute: answer });
const server = createServer((req, res) => chat(req, res)).listen(0, '127.0.0.1');
await new Promise((r) => server.once('listening', r));
const api = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/chat`;
const sentence = 'a chat answer is a job keyed by its chat id, so it outlives the page';

// 1. A message streams in.
const first = new Chat({ id: 'chat-1', transport: new JobChatTransport({ api }) });
await first.sendMessage({ text: sentence });
console.log(`chat-1 (${first.status}): ${text(answerOf(first))}`);

// 2. A reload mid-answer, then resumeStream().
const before = new Chat({ id: 'chat-2', transport: new JobChatTransport({ api }) });
const sent = before.sendMessage({ text: sentence });
await until(() => text(answerOf(before)).split(' ').length >= 4);
const heard = text(answerOf(before)).split(' ').length;
const after = new Chat({
  id: 'chat-2',
  messages: [before.messages[0]!],
  transport: new JobChatTransport({ api }),
});
await after.resumeStream();
await sent;
const same = answerOf(after)?.id === answerOf(before)?.id ? 'same' : 'another';
console.log(
  `chat-2 reloaded after ${heard} words; resumed (${after.status}): ${text(answerOf(after))} (${same} message id)`,
);

// 3. Another tab stops an answer.
const talker = new Chat({ id: 'chat-3', transport: new JobChatTransport({ api }) });
const talking = talker.sendMessage({ text: sentence });
await until(() => text(answerOf(talker)).split(' ').length >= 3);
const stopped = await new JobChatTransport({ api }).stop('chat-3');
await talking;
const said = text(answerOf(talker)).split(' ').length;
console.log(
  `chat-3 stopped from another tab: ${stopped}; ${talker.status} after ${said} words, error: ${talker.error?.message ?? 'none'}; model aborts: ${aborts}`,
);

chat.close();
server.close();
await registry.dispose();

/** Waits, 5 ms at a time, until `check` holds. */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 5));
}
