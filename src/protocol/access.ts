import type { JobSnapshot } from '../core/types.js';
import { HttpError } from './status.js';
import { streamTokenSigner, type StreamTokenOptions, type StreamTokenSigner } from './stream-token.js';

/** Who makes a request, as `authenticate` finds it. `id` names the principal; jobs it creates carry it as `owner`. */
export interface Principal {
  /** The principal's stable id; jobs it creates carry it as `owner`. */
  id: string;
  [key: string]: unknown;
}

/** What a request wants to do. `list` and `events` are asked once per request, then once per job shown. */
export type JobAction = 'create' | 'read' | 'stream' | 'append' | 'cancel' | 'list' | 'events';

/** A job as `authorize` sees it: a full snapshot, or (for `/v1/events`) its id and owner. */
export type JobRef = Pick<JobSnapshot, 'id' | 'owner'> & Partial<JobSnapshot>;

/** Finds the principal of a request, or `undefined` (then `401 UNAUTHENTICATED`). May be async. */
export type Authenticate<Req> = (request: Req) => Principal | undefined | Promise<Principal | undefined>;

/** Whether a principal may act (on a job). May be async. A job it may not see answers `404`. */
export type Authorize = (
  principal: Principal | undefined,
  action: JobAction,
  job?: JobRef,
) => boolean | Promise<boolean>;

/** The default rule: open without `authenticate`; with it, a principal sees and acts on its own jobs only. */
export function ownJobsOnly(principal: Principal | undefined, _action: JobAction, job?: JobRef): boolean {
  if (principal === undefined) return true;
  return job === undefined || job.owner === principal.id;
}

/** The auth options both handlers share. */
export interface AccessOptions<Req> {
  /** Finds the request's principal; when set, requests without one get `401`. @defaultValue none (open) */
  authenticate?: Authenticate<Req>;
  /** Decides each action. @defaultValue {@link ownJobsOnly} */
  authorize?: Authorize;
  /**
   * Signs `sse_url` with a short-lived token (HMAC over job id, principal and expiry) that authorizes
   * that one stream, for a browser `EventSource`, which cannot send headers. @defaultValue none
   */
  streamTokens?: StreamTokenOptions;
}

/** One request's answer to "who is this": the principal, or none when the handler is open. */
export type Caller = { principal: Principal | undefined };

/**
 * Authentication, authorization and stream tokens, in one place for both handlers. A request the
 * handler cannot authenticate gets `401`; a job the caller may not see is answered as unknown (`404`),
 * never `403`, which would confirm it exists.
 */
export class Access<Req> {
  /** True when neither `authenticate` nor `authorize` is set: every request may do everything. */
  readonly open: boolean;
  private readonly authenticate: Authenticate<Req> | undefined;
  private readonly authorize: Authorize;
  private readonly signer: StreamTokenSigner | undefined;

  constructor(options: AccessOptions<Req>) {
    this.authenticate = options.authenticate;
    this.authorize = options.authorize ?? ownJobsOnly;
    this.signer = options.streamTokens === undefined ? undefined : streamTokenSigner(options.streamTokens);
    this.open = this.authenticate === undefined && options.authorize === undefined;
  }

  /** The caller, or `401` when `authenticate` is set and finds nobody. */
  async identify(req: Req): Promise<Caller> {
    if (this.authenticate === undefined) return { principal: undefined };
    const principal = await this.authenticate(req);
    if (principal === undefined || principal === null) throw unauthenticated();
    if (typeof principal.id !== 'string' || principal.id === '')
      throw new HttpError(500, 'INTERNAL', 'job-registry: authenticate() returned a principal without an id');
    return { principal };
  }

  /**
   * The caller of a stream request: the request's own principal when it has one, else the principal a
   * valid stream token for this job names (the token alone authorizes the stream).
   */
  async identifyStream(
    req: Req,
    jobId: string,
    token: string | null,
  ): Promise<
    Caller & {
      /** Whether only the stream token, not the request itself, named the principal. */
      byToken: boolean;
    }
  > {
    if (this.authenticate === undefined) return { principal: undefined, byToken: false };
    const principal = await this.authenticate(req);
    if (principal !== undefined && principal !== null) return { principal, byToken: false };
    if (token !== null && this.signer !== undefined) {
      const id = await this.signer.verify(token, jobId);
      if (id !== undefined) return { principal: { id }, byToken: true };
    }
    throw unauthenticated();
  }

  /** Whether the caller may act; `false` for a job means "answer as unknown". */
  async may(caller: Caller, action: JobAction, job?: JobRef): Promise<boolean> {
    if (this.open) return true;
    return (await this.authorize(caller.principal, action, job)) === true;
  }

  /** A sync answer when `authorize` gives one (the event stream keeps its order with it), else a promise. */
  mayNow(caller: Caller, action: JobAction, job: JobRef): boolean | Promise<boolean> {
    if (this.open) return true;
    return this.authorize(caller.principal, action, job);
  }

  /** `sse_url` for a new job: signed when stream tokens are on and the caller has a principal. */
  async streamUrl(path: string, jobId: string, caller: Caller): Promise<string> {
    if (this.signer === undefined || caller.principal === undefined) return path;
    return `${path}?token=${await this.signer.sign(jobId, caller.principal.id)}`;
  }
}

function unauthenticated(): HttpError {
  return new HttpError(401, 'UNAUTHENTICATED', 'job-registry: this request needs credentials', {
    'WWW-Authenticate': 'Bearer',
  });
}
