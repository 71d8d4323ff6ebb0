/**
 * Error classes of job-registry. Callers test `instanceof` or the stable `code`, never the message text.
 * This file imports nothing, so the browser client can share it.
 */

/** Every stable error code the library uses. */
export type JobRegistryErrorCode =
  | 'JOB_NOT_FOUND'
  | 'INVALID_TRANSITION'
  | 'INVALID_STATE'
  | 'INVALID_ARGUMENT'
  | 'JOB_CLOSED'
  | 'JOB_FAILED'
  | 'JOB_CANCELLED'
  | 'JOB_BUSY'
  | 'REPLAY_EXPIRED'
  | 'REGISTRY_DISPOSED'
  | 'BACKEND_ERROR'
  | 'CAPACITY'
  | 'LIMIT_EXCEEDED'
  | 'RESUME_AHEAD';

/**
 * Base class of every error this library throws or rejects with.
 *
 * @example
 * try { registry.emit(id, 'x'); } catch (e) { if (e instanceof JobRegistryError && e.code === 'JOB_CLOSED') {} }
 */
export class JobRegistryError extends Error {
  /** A stable, machine-readable code; see {@link JobRegistryErrorCode}. */
  readonly code: JobRegistryErrorCode;
  /** The job the error is about, when there is one. */
  readonly jobId: string | undefined;

  constructor(code: JobRegistryErrorCode, message: string, options?: { cause?: unknown; jobId?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.jobId = options?.jobId;
  }
}

/** No job with this id is held (it never existed, was removed, or expired after its retention). */
export class JobNotFoundError extends JobRegistryError {
  constructor(jobId: string, hint = '') {
    super('JOB_NOT_FOUND', `job-registry: no job '${clip(jobId)}'${hint ? ` (${hint})` : ''}`, { jobId });
  }
}

/** `updateState` asked for a move the state machine does not allow (e.g. out of a terminal state). */
export class InvalidTransitionError extends JobRegistryError {
  /** The job's state when the move was asked. */
  readonly from: string;
  /** The state asked for. */
  readonly to: string;
  constructor(jobId: string, from: string, to: string) {
    super(
      'INVALID_TRANSITION',
      `job-registry: job '${clip(jobId)}' cannot go from '${from}' to '${to}'; ` +
        `allowed: queued -> running|completed|failed|cancelled, running -> completed|failed|cancelled, terminal states are final`,
      { jobId },
    );
    this.from = from;
    this.to = to;
  }
}

/** A value that is not one of the five `JobState` strings reached `updateState` (untyped callers). */
export class InvalidStateError extends JobRegistryError {
  constructor(value: unknown) {
    super(
      'INVALID_STATE',
      `job-registry: ${describe(value)} is not a job state; use one of queued, running, completed, failed, cancelled`,
    );
  }
}

/** A bad argument or option: the message names it and what is accepted. */
export class InvalidArgumentError extends JobRegistryError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', `job-registry: ${message}`);
  }
}

/** A token was emitted into a job that already reached a terminal state. */
export class JobClosedError extends JobRegistryError {
  /** The terminal state the job is in. */
  readonly state: string;
  constructor(jobId: string, state: string) {
    super('JOB_CLOSED', `job-registry: job '${clip(jobId)}' is ${state} and takes no more tokens`, { jobId });
    this.state = state;
  }
}

/**
 * The job ended as `failed`; the message is the job's own error. `expose` says whether that message may
 * reach clients: false when it came from a producer's error that was not marked public (see
 * {@link PublicError}), so a transport shows a generic text instead.
 */
export class JobFailedError extends JobRegistryError {
  /** Whether the message may reach clients; when false a transport shows `job failed` instead. */
  readonly expose: boolean;
  constructor(jobId: string, message: string, expose = true) {
    super('JOB_FAILED', message, { jobId });
    this.expose = expose;
  }
}

/** The job ended as `cancelled`; the message is the cancel reason. */
export class JobCancelledError extends JobRegistryError {
  constructor(jobId: string, message: string) {
    super('JOB_CANCELLED', message, { jobId });
  }
}

/**
 * A second producer was attached to a job that already has one; or a job was created under a key that
 * a live job has (`jobId` is then the live one's, and `key` is set).
 */
export class JobBusyError extends JobRegistryError {
  /** The key a live job already has, when that is why. */
  readonly key: string | undefined;
  constructor(jobId: string, key?: string) {
    super(
      'JOB_BUSY',
      key === undefined
        ? `job-registry: job '${clip(jobId)}' already has a producer; executeAndStream joins the running one instead`
        : `job-registry: the key '${clip(key)}' has a live job ('${clip(jobId)}'); wait for its end, cancel it, or set keyConflict: 'replace'`,
      { jobId },
    );
    this.key = key;
  }
}

/** A resume point is older than what the replay buffer still keeps (see `replayLimit`). */
export class ReplayExpiredError extends JobRegistryError {
  /** The resume point asked for: tokens with a seq above it were wanted. */
  readonly after: number;
  /** The seq of the oldest token still kept. */
  readonly firstKept: number;
  constructor(jobId: string, after: number, firstKept: number) {
    super(
      'REPLAY_EXPIRED',
      `job-registry: job '${clip(jobId)}' no longer keeps tokens after seq ${after}; the oldest kept is ${firstKept} ` +
        `(raise replayLimit, or resume from seq ${firstKept - 1} or later)`,
      { jobId },
    );
    this.after = after;
    this.firstKept = firstKept;
  }
}

/** A resume point lies past what the job has (or, once it ended, past its end); see "Resume semantics". */
export class ResumeAheadError extends JobRegistryError {
  /** The resume point asked for. */
  readonly after: number;
  /** How many tokens the job has (its last seq + 1). */
  readonly tokenCount: number;
  constructor(jobId: string, after: number, tokenCount: number, ended: boolean) {
    super(
      'RESUME_AHEAD',
      `job-registry: job '${clip(jobId)}' ${ended ? 'ended' : 'is'} at ${tokenCount} token(s) (last seq ${tokenCount - 1}); ` +
        `resume point ${after} is ahead of it${ended ? ` (its end event has id ${tokenCount})` : ''}`,
      { jobId },
    );
    this.after = after;
    this.tokenCount = tokenCount;
  }
}

/** The registry (or one owner's quota) holds as many jobs as it may; retry later. */
export class CapacityError extends JobRegistryError {
  /** Which limit was reached, e.g. `maxJobs`. */
  readonly limit: string;
  constructor(limit: string, max: number, detail = '') {
    super('CAPACITY', `job-registry: ${limit} (${max}) reached${detail ? `; ${detail}` : ''}; retry later`);
    this.limit = limit;
  }
}

/** A job passed one of its limits (e.g. `maxTokensPerJob`); the job fails with this message. */
export class LimitExceededError extends JobRegistryError {
  /** Which limit the job passed, e.g. `maxTokensPerJob`. */
  readonly limit: string;
  constructor(jobId: string, limit: string, max: number) {
    super('LIMIT_EXCEEDED', `LIMIT_EXCEEDED: job passed its ${limit} (${max})`, { jobId });
    this.limit = limit;
  }
}

/**
 * An error whose message may be shown to clients. A producer's other errors reach clients as `job failed`
 * (their text may hold secrets); any error with `expose: true` (as `http-errors` sets) counts as public too.
 *
 * @example
 * throw new PublicError('the model is overloaded, try again');
 */
export class PublicError extends Error {
  /** Always `true`: the mark {@link isPublicError} looks for. */
  readonly expose = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PublicError';
  }
}

/** Whether an error may be shown to clients: it carries `expose: true`. */
export function isPublicError(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { expose?: unknown }).expose === true;
}

/** The registry was disposed; create a new one. */
export class RegistryDisposedError extends JobRegistryError {
  constructor(method: string) {
    super('REGISTRY_DISPOSED', `job-registry: ${method}() called after dispose(); create a new JobRegistry`);
  }
}

/** The shared backend (e.g. Redis) failed; `cause` holds the underlying error. */
export class BackendError extends JobRegistryError {
  constructor(message: string, cause?: unknown) {
    super('BACKEND_ERROR', `job-registry: ${message}`, { cause });
  }
}

function clip(id: string): string {
  const s = String(id);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `'${clip(value)}'`;
  return typeof value === 'object'
    ? value === null
      ? 'null'
      : 'an object'
    : `${typeof value} ${String(value)}`;
}

/** The message of anything thrown: an Error's message, else its string form. */
export function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  if (typeof e === 'string') return e;
  try {
    return JSON.stringify(e) ?? String(e);
  } catch {
    return String(e);
  }
}
