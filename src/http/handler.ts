import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Subscription } from 'rxjs';
import type { DurationInput } from '../core/duration.js';
import { toMillis } from '../core/duration.js';
import { InvalidArgumentError, RegistryDisposedError } from '../core/errors.js';
import { isValidJobId } from '../core/ids.js';
import type { Executor, JobRegistry } from '../core/registry.js';
import type { JobSnapshot, RegistryEvent } from '../core/types.js';
import { readJsonBody } from './body.js';
import { comment, retryField, sseEvent } from './sse.js';
import { HttpError, toHttpError } from './status.js';
import { TokenStream } from './stream.js';
import { toWireEvent, toWireSnapshot } from './wire.js';

/** Cross-origin settings for frontends served from another origin. */
export interface CorsOptions {
  /** The allowed origin: `'*'`, one origin, or a list (the request's origin is echoed when listed). */
  origin: string | readonly string[];
  /** Seconds a preflight answer may be cached. Defaults to 600. */
  maxAgeSeconds?: number;
}

/** Options of {@link createJobHandler}. */
export interface JobHandlerOptions<T, P> {
  /** Where the dual-call routes live. Defaults to `/v1/inference`. */
  basePath?: string;
  /** The job list route. Defaults to `/v1/jobs`. */
  jobsPath?: string;
  /** The registry event stream route. Defaults to `/v1/events`. */
  eventsPath?: string;
  /** Runs a POSTed payload. Without it, POST only stores the payload (`takePayload`) for a worker of yours. */
  execute?: Executor<T, P>;
  /** When `execute` starts: on `'create'` (the POST) or on the first `'stream'` (deferred). Defaults to `'create'`. */
  startOn?: 'create' | 'stream';
  /** Deferred jobs (`startOn: 'stream'`) nobody streams within this time are cancelled. Defaults to 60 s. */
  claimTimeout?: DurationInput;
  /** Checks and converts a POSTed JSON body into a payload; throw to answer 400 INVALID_PAYLOAD. Defaults to identity. */
  parsePayload?: (body: unknown) => P;
  /** Token to SSE `data`. Defaults to `JSON.stringify`. */
  serialize?: (token: T) => string;
  /** Largest POST body. Defaults to 1 MiB. */
  maxBodyBytes?: number;
  /** How long a POST body may take to arrive. Defaults to 10 s. */
  bodyTimeoutMs?: number;
  /** Interval of `: ping` comments on idle streams. Defaults to 15 s; 0 turns them off. */
  heartbeatMs?: number;
  /** The `retry:` hint sent at the start of each stream, in ms. Defaults to 1000. */
  retryMs?: number;
  /**
   * Unsent bytes per connection before backpressure: a token stream pauses reading its job until the
   * socket drains; an `/v1/events` stream is closed (its client reconnects to a fresh snapshot).
   * Defaults to 1 MiB.
   */
  maxBufferedBytes?: number;
  /** Cross-origin headers; off by default. */
  cors?: CorsOptions;
}

/** A request handler for `http.createServer`, Express or Connect, plus `close()` for shutdown. */
export interface JobHandler {
  (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void;
  /** Ends every open stream and stops the heartbeat timer. */
  close(): void;
  /** Open SSE connections (token and event streams). */
  readonly connections: number;
}

const RESUME_POINT = /^\d{1,15}$/;

interface Closable {
  writeRaw(chunk: string): void;
  close(): void;
}

/**
 * Creates the HTTP handler for the dual-call routes: `POST {base}`, `GET {base}/{id}`,
 * `GET {base}/{id}/stream`, `DELETE {base}/{id}`, `GET /v1/jobs` and `GET /v1/events`.
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
  const base = normalizePath(options.basePath ?? '/v1/inference', 'basePath');
  const jobsPath = normalizePath(options.jobsPath ?? '/v1/jobs', 'jobsPath');
  const eventsPath = normalizePath(options.eventsPath ?? '/v1/events', 'eventsPath');
  const startOn = options.startOn ?? 'create';
  if (startOn !== 'create' && startOn !== 'stream')
    throw new InvalidArgumentError(`startOn must be 'create' or 'stream'`);
  const execute = options.execute;
  const claimTimeout = toMillis(options.claimTimeout ?? 60_000, 'claimTimeout');
  const serialize = options.serialize ?? ((t: T) => JSON.stringify(t) ?? 'null');
  const parsePayload = options.parsePayload ?? ((b: unknown) => b as P);
  const maxBodyBytes = positive(options.maxBodyBytes ?? 1024 * 1024, 'maxBodyBytes');
  const bodyTimeoutMs = positive(options.bodyTimeoutMs ?? 10_000, 'bodyTimeoutMs');
  const heartbeatMs = nonNegative(options.heartbeatMs ?? 15_000, 'heartbeatMs');
  const retryMs = nonNegative(options.retryMs ?? 1000, 'retryMs');
  const maxBufferedBytes = positive(options.maxBufferedBytes ?? 1024 * 1024, 'maxBufferedBytes');
  const cors = options.cors;

  const open = new Set<Closable>();
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  const track = (c: Closable): void => {
    open.add(c);
    if (heartbeat === undefined && heartbeatMs > 0) {
      heartbeat = setInterval(() => {
        for (const conn of open) conn.writeRaw(comment('ping'));
      }, heartbeatMs);
      heartbeat.unref();
    }
  };
  const untrack = (c: Closable): void => {
    open.delete(c);
    if (open.size === 0 && heartbeat !== undefined) {
      clearInterval(heartbeat);
      heartbeat = undefined;
    }
  };

  const setCors = (req: IncomingMessage, res: ServerResponse): void => {
    if (cors === undefined) return;
    const origin = req.headers.origin;
    const allowed =
      typeof cors.origin === 'string'
        ? cors.origin
        : origin !== undefined && cors.origin.includes(origin)
          ? origin
          : undefined;
    if (allowed === undefined) return;
    res.setHeader('Access-Control-Allow-Origin', allowed);
    if (allowed !== '*') res.setHeader('Vary', 'Origin');
    res.setHeader('Access-Control-Expose-Headers', 'Location');
  };

  const handle = async (
    req: IncomingMessage,
    res: ServerResponse,
    next?: (err?: unknown) => void,
  ): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path =
      url.pathname.length > 1 && url.pathname.endsWith('/') ? url.pathname.slice(0, -1) : url.pathname;
    const method = req.method ?? 'GET';
    const route = matchRoute(path);
    if (route === undefined) {
      if (next !== undefined) return next();
      throw new HttpError(404, 'NOT_FOUND', `job-registry: no route ${path.slice(0, 200)}`);
    }
    setCors(req, res);
    if (method === 'OPTIONS' && cors !== undefined) {
      res.writeHead(204, {
        'Access-Control-Allow-Methods': route.allow.join(', '),
        'Access-Control-Allow-Headers': 'Content-Type, Last-Event-ID',
        'Access-Control-Max-Age': String(cors.maxAgeSeconds ?? 600),
      });
      res.end();
      return;
    }
    const allowed = method === 'HEAD' && route.allow.includes('GET') ? 'GET' : method;
    if (!route.allow.includes(allowed))
      throw new HttpError(
        405,
        'METHOD_NOT_ALLOWED',
        `job-registry: ${method} is not allowed here; use ${route.allow.join(' or ')}`,
        {
          Allow: route.allow.join(', '),
        },
      );
    if (route.id !== undefined && !isValidJobId(route.id))
      throw new HttpError(
        400,
        'INVALID_JOB_ID',
        'job-registry: malformed job id; ids are 1-200 letters, digits, ".", "_", ":" or "-"',
      );

    switch (route.kind) {
      case 'submit':
        return submit(req, res);
      case 'job':
        if (method === 'DELETE') return cancelJob(res, route.id!);
        return sendJson(res, 200, toWireSnapshot(await found(route.id!)));
      case 'stream':
        return streamJob(req, res, route.id!, url);
      case 'list':
        return sendJson(res, 200, (await registry.listJobs()).map(toWireSnapshot));
      case 'events':
        return streamEvents(res);
    }
  };

  function matchRoute(
    path: string,
  ): { kind: 'submit' | 'job' | 'stream' | 'list' | 'events'; allow: string[]; id?: string } | undefined {
    if (path === base) return { kind: 'submit', allow: ['POST'] };
    if (path === jobsPath) return { kind: 'list', allow: ['GET'] };
    if (path === eventsPath) return { kind: 'events', allow: ['GET'] };
    if (!path.startsWith(base + '/')) return undefined;
    const rest = path.slice(base.length + 1).split('/');
    let id: string;
    try {
      id = decodeURIComponent(rest[0]!);
    } catch {
      throw new HttpError(400, 'INVALID_JOB_ID', 'job-registry: malformed job id');
    }
    if (rest.length === 1) return { kind: 'job', allow: ['GET', 'DELETE'], id };
    if (rest.length === 2 && rest[1] === 'stream') return { kind: 'stream', allow: ['GET'], id };
    throw new HttpError(404, 'NOT_FOUND', `job-registry: no route ${path.slice(0, 200)}`);
  }

  async function found(id: string): Promise<JobSnapshot> {
    const snap = await registry.findJob(id);
    if (snap === undefined)
      throw new HttpError(404, 'JOB_NOT_FOUND', `job-registry: no job '${id}' (it may have expired)`);
    return snap;
  }

  async function submit(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJsonBody(req, { maxBytes: maxBodyBytes, timeoutMs: bodyTimeoutMs });
    let payload: P;
    try {
      payload = parsePayload(body);
    } catch (e) {
      throw new HttpError(
        400,
        'INVALID_PAYLOAD',
        `job-registry: ${(e as Error)?.message ?? 'invalid payload'}`,
      );
    }
    const deferred = execute !== undefined && startOn === 'stream';
    const id = registry.createJob(deferred ? { payload, claimTimeout } : { payload });
    if (execute !== undefined && startOn === 'create') registry.executeAndStream(id, execute);
    // Other processes must see the job before the client can ask them for it. When the backend cannot
    // store it, the client gets 503 and nothing runs on: the job is removed (its executor aborted).
    try {
      await registry.flush();
    } catch (e) {
      registry.removeJob(id);
      throw e;
    }
    const sseUrl = `${base}/${id}/stream`;
    res.setHeader('Location', `${base}/${id}`);
    sendJson(res, 202, { job_id: id, sse_url: sseUrl });
  }

  async function cancelJob(res: ServerResponse, id: string): Promise<void> {
    let moved: boolean;
    try {
      moved = await registry.cancel(id, 'cancelled by request');
    } catch (e) {
      if ((e as { code?: string }).code === 'JOB_NOT_FOUND')
        throw new HttpError(404, 'JOB_NOT_FOUND', (e as Error).message);
      throw e;
    }
    const snap = await found(id);
    if (!moved)
      throw new HttpError(409, 'JOB_TERMINAL', `job-registry: job '${id}' already ended as ${snap.state}`);
    sendJson(res, 200, toWireSnapshot(snap));
  }

  async function streamJob(req: IncomingMessage, res: ServerResponse, id: string, url: URL): Promise<void> {
    const header = req.headers['last-event-id'];
    const query = url.searchParams.get('after');
    const raw = header !== undefined ? String(header).trim() : query;
    let after: number | undefined;
    if (raw !== null && raw !== undefined && raw !== '') {
      if (!RESUME_POINT.test(raw))
        throw new HttpError(
          400,
          'INVALID_RESUME_POINT',
          'job-registry: Last-Event-ID / ?after must be a token seq (a whole number >= 0)',
        );
      after = Number(raw);
    }
    await registry.checkReadable(id, after === undefined ? {} : { after });
    if (res.destroyed) return;
    openEventStream(res, retryMs);
    if (req.method === 'HEAD') return void res.end();
    res.socket?.setNoDelay(true);
    const stream: TokenStream<T> = new TokenStream<T>(
      res,
      {
        serialize,
        maxBufferedBytes,
        tokens: (from) => {
          if (execute !== undefined && startOn === 'stream' && registry.hasJob(id)) {
            registry.executeAndStream(id, execute);
          }
          return registry.tokens$(id, from === undefined ? {} : { after: from });
        },
        finalState: () => {
          let snap: JobSnapshot | undefined;
          try {
            snap = registry.getJob(id);
          } catch (e) {
            // Disposed: the stream of a job held elsewhere ended with this registry.
            if (e instanceof RegistryDisposedError) return 'closing';
            throw e;
          }
          if (snap !== undefined) return { state: snap.state, error: snap.error };
          // A job held elsewhere whose stream ended because this registry is shutting down: no terminal
          // event (the client resumes on another process).
          return registry.isDisposed ? 'closing' : undefined;
        },
        onClose: () => untrack(stream),
      },
      after,
    );
    track(stream);
    stream.start();
  }

  function streamEvents(res: ServerResponse): void {
    openEventStream(res, retryMs);
    let subscription: Subscription | undefined;
    let closed = false;
    let buffered: RegistryEvent[] | undefined = [];
    // Events of one tick go out in one write. A dashboard that reads slower than events arrive is
    // disconnected past maxBufferedBytes: its EventSource reconnects and starts from a fresh snapshot.
    let pending = '';
    const flush = (): void => {
      if (closed || pending === '') return;
      const chunk = pending;
      pending = '';
      res.write(chunk);
      if (res.writableLength > maxBufferedBytes) conn.close();
    };
    const conn: Closable = {
      writeRaw: (chunk) => {
        if (closed) return;
        if (pending === '') queueMicrotask(flush);
        pending += chunk;
      },
      close: () => {
        if (closed) return;
        closed = true;
        subscription?.unsubscribe();
        untrack(conn);
        res.end(pending);
        pending = '';
      },
    };
    const write = (e: RegistryEvent): void => conn.writeRaw(sseEvent(e.type, JSON.stringify(toWireEvent(e))));
    // The snapshot is taken before the subscription starts buffering, so events after it are not lost.
    const snapshot = registry.listJobs();
    subscription = registry.events$.subscribe({
      next: (e) => (buffered !== undefined ? buffered.push(e) : write(e)),
      complete: () => conn.close(),
      error: () => conn.close(),
    });
    res.on('close', () => conn.close());
    track(conn);
    snapshot.then(
      (jobs) => {
        if (closed) return;
        conn.writeRaw(sseEvent('snapshot', JSON.stringify(jobs.map(toWireSnapshot))));
        const early = buffered ?? [];
        buffered = undefined;
        for (const e of eventsAfterSnapshot(jobs, early)) write(e);
      },
      () => conn.close(),
    );
  }

  const handler = ((req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => {
    handle(req, res, next).catch((e: unknown) => {
      const err = toHttpError(e);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const closeAfter = err.status === 413 || err.status === 408;
      res.writeHead(err.status, {
        'Content-Type': 'application/json; charset=utf-8',
        ...err.headers,
        ...(closeAfter ? { Connection: 'close' } : {}),
      });
      res.end(JSON.stringify({ error: { code: err.code, message: err.message } }));
    });
  }) as JobHandler;
  handler.close = () => {
    for (const c of [...open]) c.close();
    if (heartbeat !== undefined) clearInterval(heartbeat);
    heartbeat = undefined;
  };
  Object.defineProperty(handler, 'connections', { get: () => open.size });
  return handler;
}

function openEventStream(res: ServerResponse, retryMs: number): void {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  res.write(retryField(retryMs));
}

/**
 * The events that arrived while a snapshot was read, less those it already shows (events from other
 * processes may race it). A job created after the snapshot keeps every later event, its removal too.
 */
export function eventsAfterSnapshot(snapshot: JobSnapshot[], early: RegistryEvent[]): RegistryEvent[] {
  const byId = new Map(snapshot.map((j) => [j.id, j]));
  const createdSince = new Set<string>();
  return early.filter((e) => {
    if (e.type === 'created') {
      if (byId.has(e.jobId)) return false;
      createdSince.add(e.jobId);
      return true;
    }
    if (createdSince.has(e.jobId)) return true;
    const snap = byId.get(e.jobId);
    if (e.type === 'removed') return snap !== undefined;
    return !(snap !== undefined && snap.updatedAt.toMillis() >= e.at.toMillis() && snap.state === e.to);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

function normalizePath(p: string, name: string): string {
  if (typeof p !== 'string' || !p.startsWith('/'))
    throw new InvalidArgumentError(`${name} must be a path starting with '/'`);
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

function positive(n: number, name: string): number {
  if (typeof n !== 'number' || !(n > 0) || !Number.isFinite(n))
    throw new InvalidArgumentError(`${name} must be a number > 0`);
  return n;
}

function nonNegative(n: number, name: string): number {
  if (typeof n !== 'number' || !(n >= 0) || !Number.isFinite(n))
    throw new InvalidArgumentError(`${name} must be a number >= 0`);
  return n;
}
