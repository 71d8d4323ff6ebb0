/**
 * The request policy every protocol runs under, once: who the caller is (`authenticate`), what it may do
 * (`authorize`, a job it may not see answered as unknown), drain, job quotas, stream and connection
 * limits, body bounds, CORS and the error answer. A protocol declares its routes and the action each
 * needs, and asks its {@link Policy}; it decides none of this itself. Imports no `node:` module.
 */
import { RegistryDisposedError, messageOf } from '../core/errors.js';
import type { JobRegistry } from '../core/registry.js';
import type { JobSnapshot } from '../core/types.js';
import { Access, type AccessOptions, type Caller, type JobAction, type JobRef } from './access.js';
import { readerCountsOf, StreamTracker, type Ticket } from './connections.js';
import { corsHeaders, preflightHeaders } from './cors.js';
import type { BodyLimits } from './json.js';
import type { PolicySettings } from './options.js';
import type { Answer, HttpRequest, Protocol, Reply } from './protocol.js';
import { HttpError, isUnexpected, toHttpError } from './status.js';
import { visibleError } from './wire.js';

/** The headers of every SSE answer, whatever its protocol. */
export const SSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-cache, no-transform',
  'X-Accel-Buffering': 'no',
});

/** The body of an error answer, in a protocol's own shape. @defaultValue `{"error":{"code","message"}}` */
export type ErrorBody = (err: HttpError) => unknown;

const defaultErrorBody: ErrorBody = (err) => ({ error: { code: err.code, message: err.message } });

/** What a protocol adds to the shared CORS headers: the request and response headers of its own. */
export interface ProtocolTraits {
  /** Request headers a browser may send beyond the shared ones (CORS). */
  allowHeaders?: string;
  /** Response headers a browser script may read beyond the shared ones (CORS). */
  exposeHeaders?: string;
  /** The body of an error answer. */
  errorBody?: ErrorBody;
}

/** The policy of one handler: its settings, its callers' access and its open streams' counts. */
export class Policy<Raw> {
  readonly access: Access<Raw>;
  readonly tracker: StreamTracker;
  readonly body: BodyLimits;
  private drained = false;

  /**
   * @param registry - the registry served: open readers are counted across every handler over it, each
   * handler's limits bounding them all.
   */
  constructor(
    registry: object,
    readonly settings: PolicySettings,
    options: AccessOptions<Raw>,
    private readonly name: string,
    private readonly extras: ProtocolTraits = {},
  ) {
    this.access = new Access<Raw>(options);
    this.tracker = new StreamTracker(settings, readerCountsOf(registry));
    this.body = { maxBytes: settings.maxBodyBytes, timeoutMs: settings.bodyTimeoutMs };
  }

  /** The CORS preflight answer when `method` is OPTIONS and the `cors` option is set; else `undefined`. */
  preflight(req: HttpRequest<Raw>, methods: readonly string[]): Answer | undefined {
    const cors = this.settings.cors;
    if (req.method !== 'OPTIONS' || cors === undefined) return undefined;
    const { headers, allowed } = corsHeaders(cors, req.header('origin'), this.extras.exposeHeaders);
    return {
      kind: 'empty',
      status: 204,
      headers: { ...headers, ...preflightHeaders(cors, allowed, methods, this.extras.allowHeaders) },
    };
  }

  /**
   * `405` with `Allow` unless the method is one of `allow` (`HEAD` counts as `GET`).
   * @returns the method, with `HEAD` as `GET` where `GET` is allowed.
   */
  checkMethod(req: HttpRequest<Raw>, allow: readonly string[]): string {
    const method = req.method === 'HEAD' && allow.includes('GET') ? 'GET' : req.method;
    if (!allow.includes(method))
      throw new HttpError(
        405,
        'METHOD_NOT_ALLOWED',
        `job-registry: ${req.method} is not allowed here; use ${allow.join(' or ')}`,
        { Allow: allow.join(', ') },
      );
    return method;
  }

  /** The job's snapshot when it exists and the caller may act on it; else `notFound`, as for an unknown id. */
  async visibleJob(
    registry: JobRegistry<unknown, unknown>,
    id: string,
    caller: Caller,
    action: JobAction,
    notFound: (id: string) => HttpError,
  ): Promise<JobSnapshot> {
    const snap = await registry.findJob(id);
    if (snap === undefined || !(await this.access.may(caller, action, snap))) throw notFound(id);
    return snap;
  }

  /**
   * Makes a new job known to every process before its client learns its id: flushes the registry, and
   * when the backend cannot store it, removes the job (its executor aborted) and rethrows (`503`).
   */
  async publish(registry: JobRegistry<unknown, unknown>, id: string): Promise<void> {
    // Held until its creator is answered: a job that ends while the store is slow is kept for its
    // retention from the answer on, so the id the client gets is never one already removed.
    const release = registry.holdForCreator(id);
    try {
      await registry.flush();
      // A keyed job another process's job of the same key won over: JobBusyError, nothing left behind.
      await registry.claimed(id);
    } catch (e) {
      release();
      registry.removeJob(id);
      throw e;
    }
    release();
  }

  /**
   * How a job's stream ends: its state and visible error, `'closing'` when this registry is shutting down
   * (a job held elsewhere: the client resumes on another process), `undefined` when the job is gone.
   */
  finalState(
    registry: JobRegistry<unknown, unknown>,
    id: string,
  ): { state: string; error?: string | undefined } | 'closing' | undefined {
    let snap: JobSnapshot | undefined;
    try {
      snap = registry.getJob(id);
    } catch (e) {
      if (e instanceof RegistryDisposedError) return 'closing';
      throw e;
    }
    if (snap !== undefined)
      return {
        state: snap.state,
        error:
          snap.error === undefined
            ? undefined
            : visibleError(snap.error, snap.errorPrivate, this.settings.exposeErrors),
      };
    return registry.isDisposed ? 'closing' : undefined;
  }

  /** Adds the CORS headers (only from the `cors` option) to an answer. */
  withCors(reply: Reply, req: HttpRequest<Raw>): Reply {
    if (reply.kind !== 'next' && this.settings.cors !== undefined)
      Object.assign(
        reply.headers,
        corsHeaders(this.settings.cors, req.header('origin'), this.extras.exposeHeaders).headers,
      );
    return reply;
  }

  /** The caller, or `401` when `authenticate` is set and finds nobody. */
  identify(req: HttpRequest<Raw>): Promise<Caller> {
    return this.access.identify(req.raw);
  }

  /** Whether the caller may act (on a job). */
  may(caller: Caller, action: JobAction, job?: JobRef): Promise<boolean> {
    return this.access.may(caller, action, job);
  }

  /** `403` when the caller may not act at all (not about a job, which would answer `404`). */
  async require(caller: Caller, action: JobAction, what: string): Promise<void> {
    if (!(await this.access.may(caller, action)))
      throw new HttpError(403, 'FORBIDDEN', `job-registry: this principal may not ${what}`);
  }

  /** Refuses new work with `503 DRAINING` and `Retry-After` once {@link Policy.drain} was called. */
  refuseWhileDraining(): void {
    if (this.drained)
      throw new HttpError(
        503,
        'DRAINING',
        'job-registry: this server is shutting down; retry on another one',
        {
          'Retry-After': String(this.settings.retryAfterSeconds),
        },
      );
  }

  drain(): void {
    this.drained = true;
  }

  get draining(): boolean {
    return this.drained;
  }

  /**
   * `429 CAPACITY` when the caller already holds `maxJobsPerPrincipal` live jobs (streams included, those a
   * shared backend keeps too: see `liveJobsOf`).
   */
  checkQuota(registry: JobRegistry<unknown, unknown>, caller: Caller): void {
    const owner = caller.principal?.id;
    const max = this.settings.maxJobsPerPrincipal;
    if (owner !== undefined && max !== Infinity && registry.liveJobsOf(owner) >= max)
      throw new HttpError(
        429,
        'CAPACITY',
        `job-registry: live jobs of this principal (maxJobsPerPrincipal) (${max}) reached; retry later`,
        { 'Retry-After': String(this.settings.retryAfterSeconds) },
      );
  }

  /** Counts an open reader in (SSE, long-poll) against the stream and connection limits, or `429`. */
  admit(jobId: string | undefined, caller: Caller): Ticket {
    return this.tracker.admit(jobId, caller.principal?.id);
  }

  release(ticket: Ticket): void {
    this.tracker.release(ticket);
  }

  /**
   * The protocol a handler serves: its `handle`, and the policy's error answer, drain and close. `close`
   * ends the streams the tracker holds (plus what `extra.close` ends); `connections` counts them unless
   * `extra.connections` says otherwise.
   */
  serve(
    handle: (req: HttpRequest<Raw>) => Promise<Reply>,
    extra: { close?: () => void; connections?: () => number; errorHeaders?: Record<string, string> } = {},
  ): Protocol<Raw> {
    // The getters below read the policy, not the returned object.
    const policy = this;
    return {
      handle,
      errorReply: (e, req) => policy.errorReply(e, req, extra.errorHeaders),
      close: () => {
        extra.close?.();
        policy.tracker.closeAll();
      },
      drain: () => policy.drain(),
      get draining() {
        return policy.drained;
      },
      get connections() {
        return extra.connections?.() ?? policy.tracker.size;
      },
    };
  }

  /** The answer to anything thrown while handling: the error shape, `Retry-After`, CORS; a bug is logged. */
  errorReply(e: unknown, req: HttpRequest<Raw> | undefined, extra: Record<string, string> = {}): Answer {
    const err = toHttpError(e);
    if (isUnexpected(e))
      this.settings.logger.error(
        `job-registry: ${this.name}${req?.method ?? 'a request'} ${req?.target.slice(0, 200) ?? ''} failed: ${
          e instanceof Error ? (e.stack ?? e.message) : messageOf(e)
        }`,
      );
    const headers: Record<string, string> = { ...extra, ...err.headers };
    if ((err.status === 429 || err.status === 503) && headers['Retry-After'] === undefined)
      headers['Retry-After'] = String(this.settings.retryAfterSeconds);
    const reply: Answer = {
      kind: 'json',
      status: err.status,
      headers,
      body: (this.extras.errorBody ?? defaultErrorBody)(err),
    };
    if (req !== undefined) this.withCors(reply, req);
    return reply;
  }
}
