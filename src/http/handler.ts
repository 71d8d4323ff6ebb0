import type { IncomingMessage, ServerResponse } from 'node:http';
import { JobFailedError, RegistryDisposedError } from '../core/errors.js';
import { isValidJobId } from '../core/ids.js';
import type { JobRegistry } from '../core/registry.js';
import { isTerminal } from '../core/states.js';
import type { JobSnapshot } from '../core/types.js';
import { Access, type Caller } from './access.js';
import { readJsonBody } from './body.js';
import { StreamTracker } from './connections.js';
import { preflight, setCors } from './cors.js';
import { streamEvents } from './events.js';
import { resolveHandlerOptions, type JobHandlerOptions } from './options.js';
import { requestPath, requestQuery } from './route.js';
import { retryField } from './sse.js';
import { HttpError, toHttpError } from './status.js';
import { TokenStream } from './stream.js';
import { toWireSnapshot, visibleError } from './wire.js';

export type { CorsOptions, JobHandlerOptions } from './options.js';
export { eventsAfterSnapshot } from './events.js';

/** A request handler for `http.createServer`, Express or Connect, plus `close()` for shutdown. */
export interface JobHandler {
  (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void;
  /** Ends every open stream and stops the heartbeat timer. */
  close(): void;
  /** Open SSE connections (token and event streams). */
  readonly connections: number;
}

type RouteKind = 'submit' | 'job' | 'stream' | 'list' | 'events';

const RESUME_POINT = /^\d{1,15}$/;

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
  const o = resolveHandlerOptions(options);
  const { base, execute } = o;
  const access = new Access<IncomingMessage>(options);
  const tracker = new StreamTracker(o);

  const handle = async (
    req: IncomingMessage,
    res: ServerResponse,
    next?: (err?: unknown) => void,
  ): Promise<void> => {
    const target = req.url ?? '/';
    const raw = requestPath(target);
    const path = raw.length > 1 && raw.endsWith('/') ? raw.slice(0, -1) : raw;
    const method = req.method ?? 'GET';
    const route = matchRoute(path);
    if (route === undefined) {
      if (next !== undefined) return next();
      throw new HttpError(404, 'NOT_FOUND', `job-registry: no route ${path.slice(0, 200)}`);
    }
    const corsAllowed = setCors(o.cors, req, res);
    if (method === 'OPTIONS' && o.cors !== undefined) return preflight(o.cors, corsAllowed, route.allow, res);
    const allowed = method === 'HEAD' && route.allow.includes('GET') ? 'GET' : method;
    if (!route.allow.includes(allowed))
      throw new HttpError(
        405,
        'METHOD_NOT_ALLOWED',
        `job-registry: ${method} is not allowed here; use ${route.allow.join(' or ')}`,
        { Allow: route.allow.join(', ') },
      );
    if (route.id !== undefined && !isValidJobId(route.id))
      throw new HttpError(
        400,
        'INVALID_JOB_ID',
        'job-registry: malformed job id; ids are 1-200 letters, digits, ".", "_", ":" or "-"',
      );
    if (route.kind === 'stream') return streamJob(req, res, route.id!, target);
    const caller = await access.identify(req);
    switch (route.kind) {
      case 'submit':
        return submit(req, res, caller);
      case 'job':
        if (method === 'DELETE') return cancelJob(res, route.id!, caller);
        return sendJson(
          res,
          200,
          toWireSnapshot(await visibleJob(route.id!, caller, 'read'), o.exposeErrors),
        );
      case 'list':
        return listJobs(res, caller);
      case 'events':
        return openEvents(res, caller);
    }
  };

  function matchRoute(path: string): { kind: RouteKind; allow: string[]; id?: string } | undefined {
    if (path === base) return { kind: 'submit', allow: ['POST'] };
    if (path === o.jobsPath) return { kind: 'list', allow: ['GET'] };
    if (path === o.eventsPath) return { kind: 'events', allow: ['GET'] };
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

  function notFound(id: string): HttpError {
    return new HttpError(404, 'JOB_NOT_FOUND', `job-registry: no job '${id}' (it may have expired)`);
  }

  /** The job's snapshot when it exists and the caller may see it; else 404, as for an unknown id. */
  async function visibleJob(
    id: string,
    caller: Caller,
    action: 'read' | 'cancel' | 'stream',
  ): Promise<JobSnapshot> {
    const snap = await registry.findJob(id);
    if (snap === undefined || !(await access.may(caller, action, snap))) throw notFound(id);
    return snap;
  }

  function tooMany(what: string, max: number): HttpError {
    return new HttpError(429, 'CAPACITY', `job-registry: ${what} (${max}) reached; retry later`, {
      'Retry-After': String(o.retryAfterSeconds),
    });
  }

  async function submit(req: IncomingMessage, res: ServerResponse, caller: Caller): Promise<void> {
    if (!(await access.may(caller, 'create'))) throw notFound('new');
    const body = await readJsonBody(req, { maxBytes: o.maxBodyBytes, timeoutMs: o.bodyTimeoutMs });
    let payload: P;
    try {
      payload = o.parsePayload(body);
    } catch (e) {
      throw new HttpError(
        400,
        'INVALID_PAYLOAD',
        `job-registry: ${(e as Error)?.message ?? 'invalid payload'}`,
      );
    }
    const owner = caller.principal?.id;
    if (owner !== undefined && registry.liveJobsOf(owner) >= o.maxJobsPerPrincipal)
      throw tooMany('live jobs of this principal (maxJobsPerPrincipal)', o.maxJobsPerPrincipal);
    const deferred = execute !== undefined && o.startOn === 'stream';
    const id = registry.createJob({
      payload,
      ...(deferred ? { claimTimeout: o.claimTimeout } : {}),
      ...(owner !== undefined ? { owner } : {}),
    });
    if (execute !== undefined && o.startOn === 'create') registry.executeAndStream(id, execute);
    // Other processes must see the job before the client can ask them for it. When the backend cannot
    // store it, the client gets 503 and nothing runs on: the job is removed (its executor aborted).
    try {
      await registry.flush();
    } catch (e) {
      registry.removeJob(id);
      throw e;
    }
    const sseUrl = await access.streamUrl(`${base}/${id}/stream`, id, caller);
    res.setHeader('Location', `${base}/${id}`);
    sendJson(res, 202, { job_id: id, sse_url: sseUrl });
  }

  async function cancelJob(res: ServerResponse, id: string, caller: Caller): Promise<void> {
    await visibleJob(id, caller, 'cancel');
    let moved: boolean;
    try {
      moved = await registry.cancel(id, 'cancelled by request');
    } catch (e) {
      if ((e as { code?: string }).code === 'JOB_NOT_FOUND') throw notFound(id);
      throw e;
    }
    const snap = await registry.findJob(id);
    if (snap === undefined) throw notFound(id);
    if (!moved)
      throw new HttpError(409, 'JOB_TERMINAL', `job-registry: job '${id}' already ended as ${snap.state}`);
    sendJson(res, 200, toWireSnapshot(snap, o.exposeErrors));
  }

  async function listJobs(res: ServerResponse, caller: Caller): Promise<void> {
    if (!(await access.may(caller, 'list'))) return sendJson(res, 200, []);
    const jobs = await registry.listJobs();
    const shown: JobSnapshot[] = [];
    for (const job of jobs) if (await access.may(caller, 'list', job)) shown.push(job);
    sendJson(
      res,
      200,
      shown.map((j) => toWireSnapshot(j, o.exposeErrors)),
    );
  }

  async function openEvents(res: ServerResponse, caller: Caller): Promise<void> {
    if (!(await access.may(caller, 'events')))
      throw new HttpError(404, 'NOT_FOUND', 'job-registry: no route');
    const ticket = tracker.admit(undefined, caller.principal?.id);
    openEventStream(res, o.retryMs);
    streamEvents(res, {
      registry: registry as JobRegistry<unknown, unknown>,
      access,
      caller,
      exposeErrors: o.exposeErrors,
      maxBufferedBytes: o.maxBufferedBytes,
      track: (c) => tracker.track(c),
      onClose: (c) => {
        tracker.untrack(c);
        tracker.release(ticket);
      },
    });
  }

  async function streamJob(
    req: IncomingMessage,
    res: ServerResponse,
    id: string,
    target: string,
  ): Promise<void> {
    const query = requestQuery(target);
    const caller = await access.identifyStream(req, id, query.get('token'));
    // An empty Last-Event-ID counts as absent, so ?after applies.
    const header = req.headers['last-event-id'];
    const fromHeader = header === undefined ? '' : String(header).trim();
    const raw = fromHeader !== '' ? fromHeader : query.get('after');
    let after: number | undefined;
    if (raw !== null && raw !== '') {
      if (!RESUME_POINT.test(raw))
        throw new HttpError(
          400,
          'INVALID_RESUME_POINT',
          'job-registry: Last-Event-ID / ?after must be a token seq (a whole number >= 0)',
        );
      after = Number(raw);
    }
    // Who may see the job is settled before anything about it (410, 400, 204) is told.
    if (!access.open && !caller.byToken) await visibleJob(id, caller, 'stream');
    const snap = await registry.checkReadable(id, after === undefined ? {} : { after });
    if (res.destroyed) return;
    // The client already saw the end (the terminal event's id is the token count): nothing to send, and
    // a browser EventSource stops reconnecting on 204.
    if (after !== undefined && isTerminal(snap.state) && after === snap.tokenCount) {
      res.writeHead(204);
      return void res.end();
    }
    const ticket = tracker.admit(id, caller.principal?.id);
    openEventStream(res, o.retryMs);
    if (req.method === 'HEAD') {
      tracker.release(ticket);
      return void res.end();
    }
    res.socket?.setNoDelay(true);
    const stream: TokenStream<T> = new TokenStream<T>(
      res,
      {
        serialize: o.serialize,
        maxBufferedBytes: o.maxBufferedBytes,
        errorText: (e) =>
          e instanceof JobFailedError ? visibleError(e.message, !e.expose, o.exposeErrors) : e.message,
        tokens: (from) => {
          if (execute !== undefined && o.startOn === 'stream' && registry.hasJob(id))
            registry.executeAndStream(id, execute);
          return registry.tokens$(id, from === undefined ? {} : { after: from });
        },
        finalState: () => finalState(id),
        // A slow reader keeps a terminal job past its retention (bounded by retentionGrace).
        hold: () => registry.holdForReader(id),
        onClose: () => {
          tracker.untrack(stream);
          tracker.release(ticket);
        },
      },
      after,
    );
    tracker.track(stream);
    stream.start();
  }

  function finalState(id: string): { state: string; error?: string | undefined } | 'closing' | undefined {
    let snap: JobSnapshot | undefined;
    try {
      snap = registry.getJob(id);
    } catch (e) {
      // Disposed: the stream of a job held elsewhere ended with this registry.
      if (e instanceof RegistryDisposedError) return 'closing';
      throw e;
    }
    if (snap !== undefined)
      return {
        state: snap.state,
        error:
          snap.error === undefined ? undefined : visibleError(snap.error, snap.errorPrivate, o.exposeErrors),
      };
    // A job held elsewhere whose stream ended because this registry is shutting down: no terminal
    // event (the client resumes on another process).
    return registry.isDisposed ? 'closing' : undefined;
  }

  const handler = ((req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => {
    handle(req, res, next).catch((e: unknown) => {
      const err = toHttpError(e);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const headers: Record<string, string> = {
        'Content-Type': 'application/json; charset=utf-8',
        ...err.headers,
      };
      if (err.status === 429 && headers['Retry-After'] === undefined)
        headers['Retry-After'] = String(o.retryAfterSeconds);
      if (err.status === 413 || err.status === 408) headers.Connection = 'close';
      res.writeHead(err.status, headers);
      res.end(JSON.stringify({ error: { code: err.code, message: err.message } }));
    });
  }) as JobHandler;
  handler.close = () => tracker.closeAll();
  Object.defineProperty(handler, 'connections', { get: () => tracker.size });
  return handler;
}

// No `Connection` header: Node keeps the connection alive, or closes it when the request asked so.
function openEventStream(res: ServerResponse, retryMs: number): void {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    'X-Accel-Buffering': 'no',
  });
  res.write(retryField(retryMs));
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}
