/**
 * What the AI SDK chat tests share: a concrete `AbstractChat` with a plain state (as the SDK's own tests
 * make one, without React), a mock model that streams words and records its abort, the chat routes served
 * on port 0 in either handler form, and the backends they run on (two servers on one Redis, so a second
 * client reaches another process).
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import {
  AbstractChat,
  streamText,
  type ChatInit,
  type ChatState,
  type ChatStatus,
  type UIMessage,
  type UIMessageStreamOnEndCallback,
} from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { JobRegistry, type JobRegistryOptions } from '../../src/core/index.js';
import {
  createChatHandler,
  createFetchChatHandler,
  type ChatOptions,
  type ChatRequest,
} from '../../src/ai-sdk/index.js';
import { haveRedis, quietLogger, registriesOn, testPrefix } from './redis.js';

/** A chat's state as plain fields: what `useChat` keeps in React state. */
class PlainState implements ChatState<UIMessage> {
  status: ChatStatus = 'ready';
  error: Error | undefined = undefined;
  constructor(public messages: UIMessage[]) {}
  pushMessage = (message: UIMessage): void => void (this.messages = [...this.messages, message]);
  popMessage = (): void => void (this.messages = this.messages.slice(0, -1));
  replaceMessage = (index: number, message: UIMessage): void => {
    this.messages = [
      ...this.messages.slice(0, index),
      this.snapshot(message),
      ...this.messages.slice(index + 1),
    ];
  };
  snapshot = <T>(thing: T): T => structuredClone(thing);
}

/** An `AbstractChat` without a UI framework. */
export class TestChat extends AbstractChat<UIMessage> {
  constructor(init: ChatInit<UIMessage>) {
    super({ ...init, state: new PlainState(init.messages ?? []) });
  }
}

/** The text of a message's text parts. */
export function textOf(message: UIMessage | undefined): string {
  return (message?.parts ?? []).map((p) => (p.type === 'text' ? p.text : '')).join('');
}

/** The text of the last user message of a chat request: the mock model's prompt. */
export function promptOf(request: ChatRequest): string {
  const user = [...request.messages].reverse().find((m) => m.role === 'user');
  return textOf(user);
}

type StreamPart =
  Awaited<ReturnType<MockLanguageModelV4['doStream']>>['stream'] extends ReadableStream<infer X> ? X : never;

/** What the mock model saw: when its abort signal fired and its stream was cancelled (`performance.now()`). */
export interface ModelEvents {
  calls: number;
  aborted: number | undefined;
  cancelled: number | undefined;
  /** Each answer's end, as `toUIMessageStream`'s `onEnd` saw it. */
  ends: Array<Parameters<UIMessageStreamOnEndCallback<UIMessage>>[0]>;
}

/**
 * A model that streams the prompt's words (a space before each but the first), one every `delayMs`, and
 * records its abort; and the chat executor that runs it through `streamText`. `failWith` makes the model
 * throw before its first word.
 */
export function wordModel(delayMs: number): {
  events: ModelEvents;
  execute: ChatOptions<ChatRequest, unknown>['execute'];
} {
  const events: ModelEvents = { calls: 0, aborted: undefined, cancelled: undefined, ends: [] };
  const model = new MockLanguageModelV4({
    doStream: async ({ abortSignal, prompt }) => {
      events.calls++;
      abortSignal?.addEventListener('abort', () => (events.aborted ??= performance.now()), { once: true });
      const last = [...prompt].reverse().find((m) => m.role === 'user');
      const text =
        last?.role === 'user' ? last.content.map((p) => (p.type === 'text' ? p.text : '')).join('') : '';
      const words = text.split(/\s+/).filter((w) => w !== '');
      let i = 0;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stream = new ReadableStream<StreamPart>({
        start(c) {
          c.enqueue({ type: 'stream-start', warnings: [] });
          c.enqueue({ type: 'text-start', id: 't' });
        },
        pull: (c) =>
          new Promise<void>((resolve) => {
            timer = setTimeout(() => {
              if (i < words.length)
                c.enqueue({ type: 'text-delta', id: 't', delta: (i > 0 ? ' ' : '') + words[i++] });
              else {
                c.enqueue({ type: 'text-end', id: 't' });
                c.enqueue({
                  type: 'finish',
                  finishReason: { unified: 'stop', raw: 'stop' },
                  usage: {
                    inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 },
                    outputTokens: { total: words.length, text: words.length, reasoning: 0 },
                  },
                });
                c.close();
              }
              resolve();
            }, delayMs);
          }),
        cancel() {
          events.cancelled ??= performance.now();
          clearTimeout(timer);
        },
      });
      return { stream };
    },
  });
  return {
    events,
    execute: (_request, { signal }) =>
      streamText({ model, prompt: promptOf(_request), abortSignal: signal }).toUIMessageStream({
        onEnd: (end) => void events.ends.push(end),
      }),
  };
}

/** The backends the chat tests run on. */
export type ChatBackend = 'memory' | 'redis';

/** Backends to run on: memory, and Redis (two registries on one prefix: two processes' worth). */
export async function chatBackends(): Promise<ChatBackend[]> {
  // haveRedis() throws in CI without Redis, and warns (skipping the Redis variants) elsewhere.
  return (await haveRedis()) ? ['memory', 'redis'] : ['memory'];
}

/** Two servers of the chat routes (on one registry in memory; on two registries of one Redis). */
export interface ChatStack {
  /** Where clients reach the first server, and the second. */
  urls: [string, string];
  registries: Array<JobRegistry<unknown, unknown>>;
  /** Both servers stop taking new answers (a graceful shutdown's first step). */
  drain(): void;
  close(): Promise<void>;
}

type Form = 'node' | 'fetch';

/** Serves the chat routes of `options` on 127.0.0.1, port 0, twice, on `backend`. */
export async function startChat(
  form: Form,
  backend: ChatBackend,
  options: Omit<ChatOptions<ChatRequest, never>, 'authenticate'> & {
    authenticate?: (authorization: string | undefined) => { id: string } | undefined;
  },
  registry: JobRegistryOptions = {},
): Promise<ChatStack> {
  const redis = backend === 'redis' ? registriesOn(testPrefix('chat'), { logger: quietLogger }) : undefined;
  const made: Array<JobRegistry<unknown, unknown>> =
    redis === undefined
      ? [new JobRegistry(registry)]
      : [redis.make<unknown>({}, registry), redis.make<unknown>({}, registry)];
  await Promise.all(made.map((r) => r.ready()));
  const servers: Array<{ server: Server; close(): void; drain(): void }> = [];
  for (let i = 0; i < 2; i++)
    servers.push(await serveOne(form, made[Math.min(i, made.length - 1)]!, options));
  return {
    urls: servers.map((s) => `http://127.0.0.1:${(s.server.address() as AddressInfo).port}`) as [
      string,
      string,
    ],
    registries: made,
    drain: () => servers.forEach((s) => s.drain()),
    close: async () => {
      for (const s of servers) {
        s.close();
        s.server.closeAllConnections();
        await new Promise<void>((r) => s.server.close(() => r()));
      }
      if (redis !== undefined) await redis.close();
      else await Promise.all(made.map((r) => r.dispose()));
    },
  };
}

async function serveOne(
  form: Form,
  registry: JobRegistry<unknown, unknown>,
  { authenticate, ...options }: Parameters<typeof startChat>[2],
): Promise<{ server: Server; close(): void; drain(): void }> {
  if (form === 'node') {
    const handler = createChatHandler(registry, {
      ...options,
      ...(authenticate !== undefined
        ? { authenticate: (req: IncomingMessage) => authenticate(req.headers.authorization) }
        : {}),
    } as ChatOptions<ChatRequest, IncomingMessage>);
    const server = createServer((req, res) => handler(req, res));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return { server, close: () => handler.close(), drain: () => handler.drain() };
  }
  const handler = createFetchChatHandler(registry, {
    ...options,
    ...(authenticate !== undefined
      ? { authenticate: (req: Request) => authenticate(req.headers.get('authorization') ?? undefined) }
      : {}),
  } as ChatOptions<ChatRequest, Request>);
  const server = serve({ fetch: handler, port: 0, hostname: '127.0.0.1' }) as Server;
  await once(server, 'listening');
  return { server, close: () => handler.close(), drain: () => handler.drain() };
}
