/**
 * The Web-standard handler: `(request: Request) => Promise<Response>` for Next.js route handlers, hono,
 * Bun, Deno and Cloudflare Workers. Same routes, statuses, wire, options, auth, heartbeats and limits as
 * the Node handler (both run one protocol); a stream's body is a pull-based `ReadableStream`, so a slow
 * reader pauses its job's stream, and `request.signal` ends it. Imports no `node:` module.
 */
import type { JobRegistry } from '../core/registry.js';
import {
  isJsonContentType,
  notJson,
  parseJsonText,
  tooLarge,
  tooSlow,
  unreadable,
  type BodyLimits,
} from '../protocol/json.js';
import type { HandlerOptions } from '../protocol/options.js';
import { createProtocol, type Answer, type HttpRequest, type Protocol } from '../protocol/protocol.js';
import { createResponsesProtocol, type ResponsesOptions } from '../protocol/responses.js';
import type { SinkOwner, SseSink } from '../protocol/sink.js';
import { HttpError } from '../protocol/status.js';

/** Options of {@link createFetchHandler}: those of both handlers, with `authenticate` given the `Request`. */
export type FetchHandlerOptions<T, P> = HandlerOptions<T, P, Request>;

/** A fetch handler, plus `close()` for shutdown. */
export interface FetchHandler {
  (request: Request): Promise<Response>;
  /** Ends every open stream and stops the heartbeat timer. */
  close(): void;
  /** Refuses new jobs and event streams with `503 DRAINING` (streams of existing jobs go on); see `Protocol.drain`. */
  drain(): void;
  /** Whether `drain()` was called. */
  readonly draining: boolean;
  /** Open SSE streams (token and event streams). */
  readonly connections: number;
}

/**
 * Creates the fetch handler. A request outside its routes gets `404` (or pass `notFound` to chain
 * another handler, as a framework's `next`).
 *
 * @example
 * // app/v1/[...path]/route.ts (Next.js)
 * const handler = createFetchHandler(registry, { execute: (p) => model.stream(p) });
 * export const GET = handler, POST = handler, DELETE = handler, OPTIONS = handler;
 * @throws InvalidArgumentError for a malformed option.
 */
export function createFetchHandler<T, P = unknown>(
  registry: JobRegistry<T, P>,
  options: FetchHandlerOptions<T, P> & { notFound?: (request: Request) => Response | Promise<Response> } = {},
): FetchHandler {
  return fetchHandler(createProtocol<T, P, Request>(registry, options), options.notFound);
}

/**
 * The OpenAI-compatible background responses preset as a fetch handler (see `createResponsesHandler`).
 *
 * @throws InvalidArgumentError for a malformed option.
 */
export function createFetchResponsesHandler<T, P = unknown>(
  registry: JobRegistry<T, P>,
  options: ResponsesOptions<T, P, Request> & {
    notFound?: (request: Request) => Response | Promise<Response>;
  },
): FetchHandler {
  return fetchHandler(createResponsesProtocol<T, P, Request>(registry, options), options.notFound);
}

/** Serves a protocol (the dual-call routes, or a preset such as the Responses API) as a fetch handler. */
export function fetchHandler(
  protocol: Protocol<Request>,
  notFound?: (request: Request) => Response | Promise<Response>,
): FetchHandler {
  const handler = (async (request: Request): Promise<Response> => {
    const req = toRequest(request);
    try {
      const reply = await protocol.handle(req);
      if (reply.kind !== 'next') return respond(reply, request);
      if (notFound !== undefined) return await notFound(request);
      return respond(
        protocol.errorReply(new HttpError(404, 'NOT_FOUND', 'job-registry: no route'), req),
        request,
      );
    } catch (e) {
      return respond(protocol.errorReply(e, req), request);
    }
  }) as FetchHandler;
  handler.close = () => protocol.close();
  handler.drain = () => protocol.drain();
  Object.defineProperty(handler, 'connections', { get: () => protocol.connections });
  Object.defineProperty(handler, 'draining', { get: () => protocol.draining });
  return handler;
}

function toRequest(request: Request): HttpRequest<Request> {
  return {
    raw: request,
    method: request.method,
    // Absolute-form: routed by its path. The URL parser already resolved dot segments here.
    target: request.url,
    header: (name) => request.headers.get(name) ?? undefined,
    readJson: (limits) => readJson(request, limits),
    readBytes: (limits) => readBytes(request, limits),
    mountPath: '',
  };
}

function respond(reply: Answer, request: Request): Response {
  if (reply.kind === 'json')
    return new Response(JSON.stringify(reply.body), {
      status: reply.status,
      headers: { ...reply.headers, 'Content-Type': 'application/json; charset=utf-8' },
    });
  if (reply.kind === 'empty') return new Response(null, { status: reply.status, headers: reply.headers });
  if (reply.kind === 'body')
    return new Response(request.method === 'HEAD' ? null : (reply.body as BodyInit), {
      status: reply.status,
      headers: reply.headers,
    });
  const sink = new FetchSink(request.signal);
  reply.start(sink);
  return new Response(sink.body, { status: 200, headers: reply.headers });
}

/**
 * One SSE stream's body: a pull-based `ReadableStream` whose queue stays empty. Its high-water mark is 0,
 * so the stream calls `pull` only when the reader waits for a chunk and none is queued: that is when a
 * write goes out, at once, straight into the reader's pending read. While the reader is busy with the
 * last chunk, writes wait here as text and go as one chunk at its next read, so a busy connection costs
 * one read and one write per read rather than per tick. `buffered` is that text; each pull is a drain.
 * The stream's own queue is used only by `end()` (a last chunk the reader has not asked for yet).
 * Cancelling the body or aborting the request closes it.
 */
class FetchSink implements SseSink {
  readonly body: ReadableStream<Uint8Array>;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private pending = '';
  /** The reader waits for a chunk (it pulled and got none): the next write goes now. */
  private waiting = false;
  private closed = false;
  private drains: Array<() => void> | undefined;
  private owner: SinkOwner | undefined;

  constructor(private readonly signal: AbortSignal | undefined) {
    this.body = new ReadableStream<Uint8Array>(
      {
        start: (c) => void (this.controller = c),
        pull: () => this.pulled(),
        cancel: () => this.finish(),
      },
      { highWaterMark: 0 },
    );
    signal?.addEventListener('abort', this, { once: true });
  }

  write(chunk: string): void {
    if (this.closed) return;
    this.pending += chunk;
    if (this.waiting) this.send();
  }

  end(chunk?: string): void {
    if (this.closed) return;
    if (chunk) this.pending += chunk;
    if (this.pending !== '') this.send();
    this.controller.close();
    this.finish();
  }

  get buffered(): number {
    return this.pending.length;
  }

  onDrain(listener: () => void): void {
    (this.drains ??= []).push(listener);
  }

  onClose(owner: SinkOwner): void {
    if (this.closed || this.signal?.aborted === true) queueMicrotask(() => owner.close());
    else this.owner = owner;
  }

  /** The request was aborted (an EventListener object: no closure per stream). */
  handleEvent(): void {
    this.finish();
  }

  private pulled(): void {
    if (this.pending !== '') this.send();
    else this.waiting = true;
    const drains = this.drains;
    if (drains !== undefined) for (const d of drains) d();
  }

  private send(): void {
    // Taken first: nothing the enqueue sets off finds this text still pending.
    const text = this.pending;
    this.pending = '';
    this.waiting = false;
    this.controller.enqueue(encoder.encode(text));
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.signal?.removeEventListener('abort', this);
    const owner = this.owner;
    this.owner = undefined;
    owner?.close();
  }
}

const encoder = new TextEncoder();

/** Reads a Request's JSON body within the limits. @throws HttpError 415, 413, 408 or 400. */
async function readJson(request: Request, limits: BodyLimits): Promise<unknown> {
  if (!isJsonContentType(request.headers.get('content-type'))) throw notJson();
  return parseJsonText(new TextDecoder().decode(await readBytes(request, limits)));
}

/** Reads a Request's body as bytes within the limits. @throws HttpError 413, 408 or 400. */
async function readBytes(request: Request, limits: BodyLimits): Promise<Uint8Array> {
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > limits.maxBytes) throw tooLarge(limits.maxBytes);
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(tooSlow(limits.timeoutMs)), limits.timeoutMs);
  });
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), timeout]).catch((e: unknown) => {
        throw e instanceof HttpError ? e : unreadable();
      });
      if (done) break;
      size += value.byteLength;
      if (size > limits.maxBytes) throw tooLarge(limits.maxBytes);
      chunks.push(value);
    }
  } catch (e) {
    // Stop the transfer: what is left of the body is never buffered.
    void reader.cancel(e).catch(sameFailure);
    throw e;
  } finally {
    clearTimeout(timer);
  }
  if (chunks.length === 1) return chunks[0]!;
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return all;
}

/** A body reader's cancel rejects only when its stream already failed: the error thrown instead says why. */
function sameFailure(): void {
  return;
}
