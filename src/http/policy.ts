/**
 * The request policy every protocol runs under, once: who the caller is (`authenticate`), what it may do
 * (`authorize`, a job it may not see answered as unknown), drain, job quotas, stream and connection
 * limits, body bounds, CORS and the error answer. A protocol declares its routes and the action each
 * needs, and asks its {@link Policy}; it decides none of this itself. Imports no `node:` module.
 */
import { messageOf } from '../core/errors.js';
import type { JobRegistry } from '../core/registry.js';
import { Access, type AccessOptions, type Caller, type JobAction, type JobRef } from './access.js';
import { StreamTracker, type Ticket } from './connections.js';
import { corsHeaders, preflightHeaders } from './cors.js';
import type { BodyLimits } from './json.js';
import type { PolicySettings } from './options.js';
import type { Answer, HttpRequest, Reply } from './protocol.js';
import { HttpError, isUnexpected, toHttpError } from './status.js';

/** What a protocol adds to the shared CORS headers: the request and response headers of its own. */
export interface CorsExtras {
  /** Request headers a browser may send beyond the shared ones. */
  allowHeaders?: string;
  /** Response headers a browser script may read beyond the shared ones. */
  exposeHeaders?: string;
}

/** The policy of one handler: its settings, its callers' access and its open streams' counts. */
export class Policy<Raw> {
  readonly access: Access<Raw>;
  readonly tracker: StreamTracker;
  readonly body: BodyLimits;
  private drained = false;

  constructor(
    readonly settings: PolicySettings,
    options: AccessOptions<Raw>,
    private readonly name: string,
    private readonly extras: CorsExtras = {},
  ) {
    this.access = new Access<Raw>(options);
    this.tracker = new StreamTracker(settings);
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

  /** `429 CAPACITY` when the caller already holds `maxJobsPerPrincipal` live jobs (streams included). */
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
      body: { error: { code: err.code, message: err.message } },
    };
    if (req !== undefined) this.withCors(reply, req);
    return reply;
  }
}
