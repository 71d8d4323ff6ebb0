/**
 * The dual-call protocol over a registry, once for both handlers: routing, auth, limits, resume rules,
 * wire encoding and SSE streams. A handler turns its request into an {@link HttpRequest} and writes the
 * {@link Reply} it gets back (the Node handler to a `ServerResponse`, the fetch handler into a
 * `Response`). Imports no `node:` module.
 */
import { InvalidArgumentError, JobFailedError, messageOf } from '../core/errors.js';
import { isValidJobId } from '../core/ids.js';
import type { JobRegistry } from '../core/registry.js';
import { isTerminal } from '../core/states.js';
import type { JobSnapshot } from '../core/types.js';
import type { Caller, JobAction } from './access.js';
import type { Ticket } from './connections.js';
import { streamEvents } from './events.js';
import type { BodyLimits } from './json.js';
import { resolveHandlerOptions, type HandlerOptions, type HandlerSettings } from './options.js';
import { Policy, SSE_HEADERS } from './policy.js';
import { requestPath, requestQuery } from './route.js';
import type { SseSink } from './sink.js';
import { retryField, sseEvent, tokenEvent } from './sse.js';
import { HttpError } from './status.js';
import { TokenStream, type StreamEncoder, type TokenStreamOptions } from './stream.js';
import { CANCEL_REASON, cancelledSnapshot, toWireSnapshot, visibleError } from './wire.js';

/** A request as the protocol sees it. `raw` is what `authenticate` receives. */
export interface HttpRequest<Raw> {
  /** The framework's own request (Node's `IncomingMessage`, a fetch `Request`...). */
  raw: Raw;
  /** The HTTP method, upper case. */
  method: string;
  /** The raw request-target: path and query as sent (origin- or absolute-form). */
  target: string;
  /** A request header by name (any case), or undefined when absent. */
  header(name: string): string | undefined;
  /** Reads and parses the JSON body within the limits (HttpError 415, 413, 408, 400). */
  readJson(limits: BodyLimits): Promise<unknown>;
  /** Reads the body as bytes within the limits (HttpError 413, 408, 400). */
  readBytes(limits: BodyLimits): Promise<Uint8Array>;
  /** The path prefix a framework mounted the handler under and stripped from `target` ('' for none). */
  mountPath: string;
}

/** What to answer. `next` means the path is not the handler's (a framework's `next()`, else 404). */
export type Reply =
  | {
      /** A JSON body. */
      kind: 'json';
      /** The HTTP status. */
      status: number;
      /** The answer's headers. */
      headers: Record<string, string>;
      /** The value to send as JSON. */
      body: unknown;
    }
  | {
      /** A body of bytes or text, sent as it is (its `Content-Type` among `headers`). */
      kind: 'body';
      /** The HTTP status. */
      status: number;
      /** The answer's headers. */
      headers: Record<string, string>;
      /** The bytes or text to send. */
      body: Uint8Array | string;
    }
  | {
      /** No body (`204`, `HEAD`, a CORS preflight). */
      kind: 'empty';
      /** The HTTP status. */
      status: number;
      /** The answer's headers. */
      headers: Record<string, string>;
    }
  | {
      /** An event stream. */
      kind: 'sse';
      /** Always `200`. */
      status: 200;
      /** The answer's headers (`Content-Type: text/event-stream`...). */
      headers: Record<string, string>;
      /** Starts writing the stream into the sink, once the headers are sent. */
      start(sink: SseSink): void;
    }
  | {
      /** Not this handler's path. */
      kind: 'next';
    };

/** A reply that answers the request (anything but `next`). */
export type Answer = Exclude<
  Reply,
  {
    /** The kind left out: `next` answers nothing. */
    kind: 'next';
  }
>;

/** The protocol of one handler. */
export interface Protocol<Raw> {
  /** Routes a request and works out its answer. */
  handle(req: HttpRequest<Raw>): Promise<Reply>;
  /** The answer to anything thrown while handling. */
  errorReply(e: unknown, req?: HttpRequest<Raw>): Answer;
  /** Ends every open stream and stops the heartbeat timer. */
  close(): void;
  /**
   * Stops taking new work for a graceful shutdown: new jobs and new event streams answer `503 DRAINING`
   * with `Retry-After` (another replica takes them); streams of existing jobs go on. Idempotent.
   */
  drain(): void;
  /** Whether {@link Protocol.drain} was called. */
  readonly draining: boolean;
  /** SSE streams this handler has open now. */
  readonly connections: number;
}

type RouteKind = 'submit' | 'job' | 'stream' | 'list' | 'events';

const RESUME_POINT = /^\d{1,15}$/;

/** Builds the protocol for one handler. @throws InvalidArgumentError for a malformed option. */
export function createProtocol<T, P, Raw>(
  registry: JobRegistry<T, P>,
  options: HandlerOptions<T, P, Raw>,
): Protocol<Raw> {
  checkRegistry(registry, 'createJobHandler');
  const o: HandlerSettings<T, P> = resolveHandlerOptions(options, ['notFound']);
  const { base, execute } = o;
  const policy = new Policy<Raw>(registry, o, options, '');
  const { access, tracker } = policy;
  const anyRegistry = registry as JobRegistry<unknown, unknown>;
  // One options object for every token stream of this handler: a stream holds only its own state.
  const streams: TokenStreamOptions<T> = {
    encoder: sseEncoder(o.serialize),
    maxBufferedBytes: o.maxBufferedBytes,
    errorText: (e) =>
      e instanceof JobFailedError ? visibleError(e.message, !e.expose, o.exposeErrors) : e.message,
    tokens: (id, from) => {
      if (execute !== undefined && o.startOn === 'stream' && registry.hasJob(id))
        registry.executeAndStream(id, execute);
      return registry.tokens$(id, from === undefined ? {} : { after: from });
    },
    finalState: (id) => policy.finalState(anyRegistry, id),
    // A slow reader keeps a terminal job past its retention (bounded by retentionGrace).
    hold: (id) => registry.holdForReader(id),
    onClose: (stream) => {
      tracker.untrack(stream);
      tracker.release(stream.ticket as Ticket);
    },
  };

  async function handle(req: HttpRequest<Raw>): Promise<Reply> {
    const raw = requestPath(req.target);
    const path = raw.length > 1 && raw.endsWith('/') ? raw.slice(0, -1) : raw;
    const route = matchRoute(path);
    if (route === undefined) return { kind: 'next' };
    return policy.preflight(req, route.allow) ?? policy.withCors(await answer(req, route), req);
  }

  async function answer(
    req: HttpRequest<Raw>,
    route: { kind: RouteKind; allow: string[]; id?: string },
  ): Promise<Reply> {
    policy.checkMethod(req, route.allow);
    const method = req.method;
    const id = route.id;
    if (id !== undefined && !isValidJobId(id))
      throw new HttpError(
        400,
        'INVALID_JOB_ID',
        'job-registry: malformed job id; ids are 1-200 letters, digits, ".", "_", ":" or "-"',
      );
    if (route.kind === 'stream') return streamJob(req, id!);
    const caller = await access.identify(req.raw);
    switch (route.kind) {
      case 'submit':
        return submit(req, caller);
      case 'job':
        if (method === 'DELETE') return cancelJob(id!, caller);
        return json(200, toWireSnapshot(await visibleJob(id!, caller, 'read'), o.exposeErrors));
      case 'list':
        return listJobs(caller);
      case 'events':
        return openEvents(req, caller);
    }
  }

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
  function visibleJob(id: string, caller: Caller, action: JobAction): Promise<JobSnapshot> {
    return policy.visibleJob(anyRegistry, id, caller, action, notFound);
  }

  async function submit(req: HttpRequest<Raw>, caller: Caller): Promise<Reply> {
    policy.refuseWhileDraining();
    await policy.require(caller, 'create', 'create jobs');
    const body = await req.readJson(policy.body);
    let payload: P;
    try {
      payload = o.parsePayload(body);
    } catch (e) {
      throw new HttpError(400, 'INVALID_PAYLOAD', `job-registry: ${messageOf(e)}`);
    }
    policy.checkQuota(anyRegistry, caller);
    const owner = caller.principal?.id;
    const deferred = execute !== undefined && o.startOn === 'stream';
    const id = registry.createJob({
      payload,
      ...(deferred ? { claimTimeout: o.claimTimeout } : {}),
      ...(owner !== undefined ? { owner } : {}),
    });
    if (execute !== undefined && o.startOn === 'create') registry.executeAndStream(id, execute);
    await policy.publish(anyRegistry, id);
    const where = `${o.publicBase ?? req.mountPath + base}/${id}`;
    let sseUrl: string;
    try {
      sseUrl = await access.streamUrl(`${where}/stream`, id, caller);
    } catch (e) {
      // No job runs on for a client that never learns its stream URL.
      registry.removeJob(id);
      throw e;
    }
    return { kind: 'json', status: 202, headers: { Location: where }, body: { job_id: id, sse_url: sseUrl } };
  }

  async function cancelJob(id: string, caller: Caller): Promise<Reply> {
    const before = await visibleJob(id, caller, 'cancel');
    let moved: boolean;
    try {
      moved = await registry.cancel(id, CANCEL_REASON);
    } catch (e) {
      if ((e as { code?: string }).code === 'JOB_NOT_FOUND') throw notFound(id);
      throw e;
    }
    const snap = await registry.findJob(id);
    if (snap === undefined) {
      // The cancel took effect and the job expired before this answer: it was cancelled all the same.
      if (moved) return json(200, toWireSnapshot(cancelledSnapshot(before, CANCEL_REASON), o.exposeErrors));
      throw notFound(id);
    }
    if (!moved)
      throw new HttpError(409, 'JOB_TERMINAL', `job-registry: job '${id}' already ended as ${snap.state}`);
    return json(200, toWireSnapshot(snap, o.exposeErrors));
  }

  async function listJobs(caller: Caller): Promise<Reply> {
    if (!(await access.may(caller, 'list'))) return json(200, []);
    const shown: JobSnapshot[] = [];
    for (const job of await registry.listJobs()) if (await access.may(caller, 'list', job)) shown.push(job);
    return json(
      200,
      shown.map((j) => toWireSnapshot(j, o.exposeErrors)),
    );
  }

  // Failures of event streams are logged once per outage: clients reconnect in a loop meanwhile.
  let eventsFailing = false;
  async function openEvents(req: HttpRequest<Raw>, caller: Caller): Promise<Reply> {
    if (!(await access.may(caller, 'events')))
      throw new HttpError(404, 'NOT_FOUND', 'job-registry: no route');
    const ticket = tracker.admit(undefined, caller.principal?.id);
    if (req.method === 'HEAD') {
      tracker.release(ticket);
      return { kind: 'empty', status: 200, headers: { ...SSE_HEADERS } };
    }
    return sse((sink) =>
      streamEvents(sink, {
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
        onFailure: (e) => {
          if (eventsFailing) return;
          eventsFailing = true;
          o.logger.error(`job-registry: an ${o.eventsPath} stream failed and was closed: ${describe(e)}`);
        },
        onSnapshot: () => {
          if (!eventsFailing) return;
          eventsFailing = false;
          o.logger.warn(`job-registry: ${o.eventsPath} streams open again`);
        },
      }),
    );
  }

  /** The resume point of a stream request: `Last-Event-ID` (unless empty), else `?after`. */
  function resumePoint(req: HttpRequest<Raw>, query: URLSearchParams): number | undefined {
    const fromHeader = (req.header('last-event-id') ?? '').trim();
    const raw = fromHeader !== '' ? fromHeader : query.get('after');
    if (raw === null || raw === '') return undefined;
    if (!RESUME_POINT.test(raw))
      throw new HttpError(
        400,
        'INVALID_RESUME_POINT',
        'job-registry: Last-Event-ID / ?after must be a token seq (a whole number >= 0)',
      );
    return Number(raw);
  }

  async function streamJob(req: HttpRequest<Raw>, id: string): Promise<Reply> {
    const query = requestQuery(req.target);
    const caller = await access.identifyStream(req.raw, id, query.get('token'));
    const after = resumePoint(req, query);
    // Who may see the job is settled before anything about it (410, 400, 204) is told.
    if (!access.open && !caller.byToken) await visibleJob(id, caller, 'stream');
    const snap = await registry.checkReadable(id, after === undefined ? {} : { after });
    // The client already saw the end (the terminal event's id is the token count): nothing to send, and
    // a browser EventSource stops reconnecting on 204. Not when the job's runner died: its readers may
    // have seen more tokens than it stored, so that id can be a token's, and the end is sent again.
    if (after !== undefined && isTerminal(snap.state) && after === snap.tokenCount && snap.tailLost !== true)
      return { kind: 'empty', status: 204, headers: {} };
    // The job's own id string from here on: the one parsed from the URL is not kept by every stream.
    const jobId = snap.id;
    const ticket = tracker.admit(jobId, caller.principal?.id);
    if (req.method === 'HEAD') {
      tracker.release(ticket);
      return { kind: 'empty', status: 200, headers: { ...SSE_HEADERS } };
    }
    return sse((sink) => {
      const stream = new TokenStream<T>(sink, streams, jobId, after, ticket);
      tracker.track(stream);
      stream.start();
    });
  }

  function sse(open: (sink: SseSink) => void): Reply {
    return {
      kind: 'sse',
      status: 200,
      headers: { ...SSE_HEADERS },
      start: (sink) => {
        sink.write(retryField(o.retryMs));
        open(sink);
      },
    };
  }

  return policy.serve(handle);
}

/** The dual-call wire: `id: <seq>` `event: token` per token, then one `done` or `error` with id = count. */
export function sseEncoder<T>(serialize: (token: T) => string): StreamEncoder<T> {
  return {
    token: (ev) => {
      let data: string;
      try {
        data = serialize(ev.token);
      } catch (e) {
        data = JSON.stringify({ unserializable: messageOf(e) });
      }
      return tokenEvent(ev.seq, typeof data === 'string' ? data : String(data));
    },
    end: (state, error, count) =>
      state === 'completed'
        ? sseEvent('done', '{"state":"completed"}', count)
        : sseEvent('error', JSON.stringify({ state, error: error ?? state }), count),
  };
}

/** A handler made without its registry fails at once, not on its first request. */
export function checkRegistry(registry: unknown, factory: string): void {
  if (
    registry === null ||
    typeof registry !== 'object' ||
    typeof (registry as JobRegistry).createJob !== 'function'
  )
    throw new InvalidArgumentError(`${factory}(registry, options) needs a JobRegistry as its first argument`);
}

function describe(e: unknown): string {
  return e instanceof Error ? (e.stack ?? e.message) : messageOf(e);
}

function json(status: number, body: unknown): Reply {
  return { kind: 'json', status, headers: {}, body };
}
