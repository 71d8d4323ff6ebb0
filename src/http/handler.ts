import type { IncomingMessage, ServerResponse } from 'node:http';
import { discardRest, readBodyBytes, readJsonBody } from './body.js';
import type { HandlerOptions } from '../protocol/options.js';
import { createProtocol, type Answer, type HttpRequest, type Protocol } from '../protocol/protocol.js';
import { createResponsesProtocol, type ResponsesOptions } from '../protocol/responses.js';
import type { SinkOwner, SseSink } from '../protocol/sink.js';
import { HttpError, isUnexpected } from '../protocol/status.js';
import type { JobRegistry } from '../core/registry.js';

export type { CorsOptions } from '../protocol/options.js';
export { eventsAfterSnapshot } from '../protocol/events.js';

/** Options of {@link createJobHandler}: those of both handlers, with `authenticate` given Node's request. */
export type JobHandlerOptions<T, P> = HandlerOptions<T, P, IncomingMessage>;

/** A request handler for `http.createServer`, Express or Connect, plus `close()` for shutdown. */
export interface JobHandler {
  (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void;
  /** Ends every open stream and stops the heartbeat timer. */
  close(): void;
  /** Refuses new jobs and event streams with `503 DRAINING` (streams of existing jobs go on); see `Protocol.drain`. */
  drain(): void;
  /** Whether `drain()` was called. */
  readonly draining: boolean;
  /** Open SSE connections (token and event streams). */
  readonly connections: number;
}

/**
 * Creates the Node HTTP handler for the dual-call routes: `POST {base}`, `GET {base}/{id}`,
 * `GET {base}/{id}/stream`, `DELETE {base}/{id}`, `GET /v1/jobs` and `GET /v1/events`. Mounted under a
 * prefix (Express `app.use('/api', handler)`), its `sse_url` and `Location` carry the prefix.
 *
 * @example
 * const handler = createJobHandler(registry, { execute: (p) => model.stream(p) });
 * http.createServer(handler).listen(8080);
 * @throws InvalidArgumentError for a malformed option.
 */
export function createJobHandler<T, P = unknown>(
  registry: JobRegistry<T, P>,
  options: JobHandlerOptions<T, P> = {},
): JobHandler {
  return nodeHandler(createProtocol<T, P, IncomingMessage>(registry, options));
}

/**
 * The OpenAI-compatible background responses preset as a Node handler: `POST /v1/responses`,
 * `GET /v1/responses/{id}` (`?stream=true&starting_after=N` resumes), `POST /v1/responses/{id}/cancel`.
 *
 * @example
 * const responses = createResponsesHandler(registry, {
 *   execute: (p) => model.stream(p),
 *   toPayload: (req) => ({ prompt: String(req.input) }),
 * });
 * http.createServer((req, res) => responses(req, res, () => jobs(req, res)));
 * @throws InvalidArgumentError for a malformed option.
 */
export function createResponsesHandler<T, P = unknown>(
  registry: JobRegistry<T, P>,
  options: ResponsesOptions<T, P, IncomingMessage>,
): JobHandler {
  return nodeHandler(createResponsesProtocol<T, P, IncomingMessage>(registry, options));
}

/** Serves a protocol (the dual-call routes, or a preset such as the Responses API) as a Node handler. */
export function nodeHandler(protocol: Protocol<IncomingMessage>): JobHandler {
  const handler = ((req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => {
    const request = toRequest(req);
    protocol
      .handle(request)
      .then((reply) => {
        if (reply.kind !== 'next') return send(res, reply);
        if (next !== undefined) return next();
        send(res, protocol.errorReply(new HttpError(404, 'NOT_FOUND', 'job-registry: no route'), request));
      })
      .catch((e: unknown) => {
        if (res.headersSent) return void res.destroy();
        // A bug or a broken dependency goes to the framework's error handler when there is one.
        if (next !== undefined && isUnexpected(e)) return next(e);
        const reply = protocol.errorReply(e, request);
        // A body too large is read on and thrown away (within bounds) so that the client sees the 413;
        // one too slow, or too large to wait for, is not: the connection goes.
        if (reply.kind === 'json' && (reply.status === 408 || (reply.status === 413 && !discardRest(req))))
          reply.headers.Connection = 'close';
        send(res, reply);
      });
  }) as JobHandler;
  handler.close = () => protocol.close();
  handler.drain = () => protocol.drain();
  Object.defineProperty(handler, 'connections', { get: () => protocol.connections });
  Object.defineProperty(handler, 'draining', { get: () => protocol.draining });
  return handler;
}

function toRequest(req: IncomingMessage): HttpRequest<IncomingMessage> {
  return {
    raw: req,
    method: req.method ?? 'GET',
    target: req.url ?? '/',
    header: (name) => {
      const v = req.headers[name];
      return Array.isArray(v) ? v.join(', ') : v;
    },
    readJson: (limits) => readJsonBody(req, limits),
    readBytes: (limits) => readBodyBytes(req, limits),
    // Express (and Connect-style routers) strip the mount path from req.url and keep it in baseUrl.
    mountPath:
      (req as IncomingMessage & { baseUrl?: unknown }).baseUrl === undefined
        ? ''
        : String((req as IncomingMessage & { baseUrl?: unknown }).baseUrl),
  };
}

function send(res: ServerResponse, reply: Answer): void {
  if (reply.kind === 'json') {
    const text = JSON.stringify(reply.body);
    res.writeHead(reply.status, {
      ...reply.headers,
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(text),
    });
    return void res.end(text);
  }
  if (reply.kind === 'empty') {
    res.writeHead(reply.status, reply.headers);
    return void res.end();
  }
  if (reply.kind === 'body') {
    const length = typeof reply.body === 'string' ? Buffer.byteLength(reply.body) : reply.body.byteLength;
    res.writeHead(reply.status, { ...reply.headers, 'Content-Length': length });
    // Node sends no body for a HEAD request.
    return void res.end(reply.body);
  }
  // No `Connection` header: Node keeps the connection alive, or closes it when the request asked so.
  res.writeHead(200, reply.headers);
  res.socket?.setNoDelay(true);
  reply.start(new NodeSink(res));
}

/** An SSE sink over a Node response: `buffered` is the socket's unsent bytes. A class: no closures per stream. */
class NodeSink implements SseSink {
  constructor(private readonly res: ServerResponse) {}
  write(chunk: string): void {
    if (!this.res.destroyed) this.res.write(chunk);
  }
  end(chunk?: string): void {
    // The client may be gone already (the stream ends because it closed): nothing to send then.
    if (!this.res.destroyed && !this.res.writableEnded) this.res.end(chunk);
  }
  get buffered(): number {
    return this.res.writableLength;
  }
  onDrain(listener: () => void): void {
    this.res.on('drain', listener);
  }
  onClose(target: SinkOwner): void {
    if (this.res.destroyed || this.res.writableFinished) queueMicrotask(() => target.close());
    else {
      // On the response itself, with one shared listener: no closure per stream.
      (this.res as Closing)[CLOSES] = target;
      this.res.on('close', closeTarget);
    }
  }
}

const CLOSES = Symbol('job-registry.closes');
type Closing = ServerResponse & { [CLOSES]?: SinkOwner };

function closeTarget(this: Closing): void {
  this[CLOSES]?.close();
}
