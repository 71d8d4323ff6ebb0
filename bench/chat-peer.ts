/**
 * The server of the chat benchmark, in its own process so its CPU is measured alone: a `node:http` server
 * on port 0 answering the AI SDK's chat routes, `POST /api/chat` and `GET /api/chat/{chatId}/stream`,
 * through one system per run:
 * - ours: `createChatHandler` over a JobRegistry with `redisBackend`;
 * - resumable: the AI SDK's resumable-stream pattern: POST answers `resumableStream(chatId, ...)` of the
 *   UI message stream as SSE strings (`JsonToSseTransformStream`), GET answers
 *   `resumeExistingStream(chatId)` (204 when none), both written as `UI_MESSAGE_STREAM_HEADERS`.
 * Both run the same model: a pull stream of UI message chunks (`start`, `text-start`, the deltas,
 * `text-end`, `finish`), one chunk per event-loop turn. It stops after half its deltas until the server
 * has answered the chat's resume (the GET's response head is written, so its reader is in place): every
 * reconnect then lands mid-answer, as it does against a real model, slower than any reconnect.
 */
import { createServer, ServerResponse, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { JsonToSseTransformStream, UI_MESSAGE_STREAM_HEADERS, pipeTextStreamToResponse } from 'ai';
import type { UIMessageChunk } from 'ai';
import { Redis } from 'ioredis';
import { createResumableStreamContext } from 'resumable-stream/ioredis';
import { createChatHandler } from '../src/ai-sdk/index.js';
import { JobRegistry } from '../src/core/index.js';
import { redisBackend } from '../src/redis/index.js';
import { gc } from './lib.js';
import { once, runPeer, send } from './ipc.js';

export type System = 'ours' | 'resumable';

export interface Open {
  system: System;
  /** Redis key prefix of the run. */
  prefix: string;
  /** Text deltas of each answer. */
  deltas: number;
}

export interface Opened {
  port: number;
}

export interface Closed {
  /** CPU of this process (user + system, µs) from before the first request to the `close` message. */
  cpu: number;
  /** Answers whose model ran to its `finish` chunk. */
  answers: number;
}

/** The chat handler's default routes. */
const BASE = '/api/chat';

/** Delta k's text: a short word, as a model's tokens are, that tells a reader which delta it is (` w<k>`). */
const delta = (k: number): string => ` w${k}`;

const [url] = process.argv.slice(2) as [string];
const RESUME = new RegExp(`^${BASE}/([^/?]+)/stream$`);
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** The halfway stop of each chat's model, opened by the chat's resume. */
class Gates {
  private readonly open = new Map<string, { wait: Promise<void>; go: () => void }>();

  wait(chatId: string): Promise<void> {
    return this.gate(chatId).wait;
  }

  pass(chatId: string): void {
    this.gate(chatId).go();
  }

  private gate(chatId: string) {
    let g = this.open.get(chatId);
    if (g === undefined) {
      let go!: () => void;
      const wait = new Promise<void>((r) => (go = r));
      g = { wait, go };
      this.open.set(chatId, g);
    }
    return g;
  }
}

let gates = new Gates();
let answers = 0;

/** The model: its UI message chunks, one per event-loop turn as the server pulls them. */
function model(chatId: string, deltas: number): ReadableStream<UIMessageChunk> {
  const half = deltas >> 1;
  // -2: start, -1: text-start, 0 .. deltas - 1: the deltas, deltas: text-end, deltas + 1: finish.
  let k = -2;
  return new ReadableStream<UIMessageChunk>({
    async pull(controller) {
      await turn();
      if (k === half) await gates.wait(chatId);
      const at = k++;
      if (at === -2) controller.enqueue({ type: 'start' });
      else if (at === -1) controller.enqueue({ type: 'text-start', id: 't0' });
      else if (at < deltas) controller.enqueue({ type: 'text-delta', id: 't0', delta: delta(at) });
      else if (at === deltas) controller.enqueue({ type: 'text-end', id: 't0' });
      else {
        controller.enqueue({ type: 'finish' });
        controller.close();
        answers++;
      }
    },
  });
}

/** A response that opens its chat's gate when a resume is answered with a stream. */
class ResumeResponse extends ServerResponse {
  override writeHead(statusCode: number, ...rest: unknown[]): this {
    const m = this.req.method === 'GET' && statusCode === 200 ? RESUME.exec(this.req.url ?? '') : null;
    if (m !== null) gates.pass(decodeURIComponent(m[1]!));
    return Reflect.apply(ServerResponse.prototype.writeHead, this, [statusCode, ...rest]) as this;
  }
}

interface Target {
  handle(req: IncomingMessage, res: ServerResponse): void;
  close(): Promise<void>;
}

async function ours(prefix: string, deltas: number): Promise<Target> {
  const registry = new JobRegistry({ backend: redisBackend({ url, prefix }) });
  await registry.ready();
  const chat = createChatHandler(registry, { execute: (request) => model(request.id, deltas) });
  return {
    handle: chat,
    close: async () => {
      chat.close();
      await registry.dispose();
    },
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}

function resumable(prefix: string, deltas: number): Target {
  const publisher = new Redis(url);
  const subscriber = new Redis(url);
  const context = createResumableStreamContext({
    waitUntil: null,
    keyPrefix: `${prefix}rs`,
    publisher,
    subscriber,
  });
  const write = (res: ServerResponse, stream: ReadableStream<string>): Promise<void> =>
    pipeTextStreamToResponse({ response: res, headers: UI_MESSAGE_STREAM_HEADERS, stream });
  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = req.url ?? '/';
    if (req.method === 'POST' && path === BASE) {
      const { id } = JSON.parse(await readBody(req)) as { id: string };
      const stream = await context.resumableStream(id, () =>
        model(id, deltas).pipeThrough(new JsonToSseTransformStream()),
      );
      // The chat's stream is over already: the app would load the answer from its store.
      if (stream === null) return void res.writeHead(204).end();
      return write(res, stream);
    }
    const m = req.method === 'GET' ? RESUME.exec(path) : null;
    if (m === null) return void res.writeHead(404).end();
    const stream = await context.resumeExistingStream(decodeURIComponent(m[1]!));
    if (stream == null) return void res.writeHead(204).end();
    return write(res, stream);
  };
  return {
    handle: (req, res) =>
      void route(req, res).catch((e: unknown) => {
        console.error(`chat-peer: resumable-stream ${req.method} ${req.url} failed:`, e);
        if (res.headersSent) res.destroy();
        else res.writeHead(500).end();
      }),
    close: async () => {
      await Promise.all([publisher.quit(), subscriber.quit()]);
    },
  };
}

runPeer(async () => {
  for (;;) {
    const { system, prefix, deltas } = await once<Open>('open');
    gates = new Gates();
    answers = 0;
    const target = system === 'ours' ? await ours(prefix, deltas) : resumable(prefix, deltas);
    const server: Server = createServer({ ServerResponse: ResumeResponse }, (req, res) =>
      target.handle(req, res),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    gc();
    const c0 = process.cpuUsage();
    send({ type: 'opened', port: (server.address() as AddressInfo).port } satisfies Opened & {
      type: string;
    });
    await once('close');
    const cpu = process.cpuUsage(c0);
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await target.close();
    send({ type: 'closed', cpu: cpu.user + cpu.system, answers } satisfies Closed & { type: string });
  }
});
