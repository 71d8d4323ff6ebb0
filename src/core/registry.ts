import { DateTime, FixedOffsetZone } from 'luxon';
import {
  BehaviorSubject,
  Observable,
  Subject,
  from,
  merge,
  takeUntil,
  type ObservableInput,
  type Observer,
  type Subscriber,
  type Subscription,
} from 'rxjs';
import { v4 as uuidv4 } from 'uuid';
import { memoryBackend, type BackendHost, type HeldJob, type RegistryBackend } from './backend.js';
import { Deadlines, type Deadline } from './deadlines.js';
import { toMillis, type DurationInput } from './duration.js';
import {
  InvalidArgumentError,
  InvalidStateError,
  InvalidTransitionError,
  JobBusyError,
  JobCancelledError,
  JobClosedError,
  JobFailedError,
  JobNotFoundError,
  RegistryDisposedError,
  ReplayExpiredError,
  messageOf,
} from './errors.js';
import { isValidJobId } from './ids.js';
import { canTransition, isJobState, isTerminal } from './states.js';
import type { JobSnapshot, JobState, JobStatus, RegistryEvent, TokenEvent } from './types.js';

/** Options of {@link JobRegistry}. Every field is optional. */
export interface JobRegistryOptions {
  /** Prefix of generated ids (letters, digits, `.`, `_`, `:`, `-`). Defaults to `'job-'`. */
  idPrefix?: string;
  /** Tokens kept per job for replay to late or resuming readers. Defaults to `Infinity` (all). */
  replayLimit?: number;
  /** How long a job stays after reaching a terminal state before it removes itself. Defaults to 10 minutes; `Infinity` keeps it until `removeJob`. */
  retention?: DurationInput;
  /**
   * A queued job that nobody claims (no reader subscribes to its tokens, no producer is attached, no token
   * is emitted) within this time is cancelled, then removed by `retention`. This stops the leak of a client
   * that POSTs and never GETs. Defaults to none (jobs wait forever); `createJob` can set it per job.
   */
  claimTimeout?: DurationInput;
  /**
   * A live job that had readers and has had none (in this process) for this long is cancelled: the
   * client went away for good. Readers that resume within the time keep it alive. Defaults to none. With
   * a shared backend, readers on other processes are not counted, so leave it off there.
   */
  abandonTimeout?: DurationInput;
  /** Where jobs are shared between processes. Defaults to {@link memoryBackend} (this process only). */
  backend?: RegistryBackend;
}

/** What `createJob` accepts. */
export interface CreateJobInit<P> {
  /** Payload for deferred execution; read back once with `takePayload`, or handed to the executor. */
  payload?: P;
  /** Overrides the registry's `claimTimeout` for this job. */
  claimTimeout?: DurationInput;
}

/** The second argument of an {@link Executor}. */
export interface ExecutionContext {
  jobId: string;
  /** Aborts when the job is cancelled, removed, or ended by someone else while the executor still runs. */
  signal: AbortSignal;
}

/** Produces a job's tokens from its payload: an Observable, a Promise, an (async) iterable or an array. */
export type Executor<T, P> = (payload: P | undefined, context: ExecutionContext) => ObservableInput<T>;

/** Options of `tokens$`. */
export interface TokensOptions {
  /** Deliver only tokens with `seq > after` (a resume point). Defaults to all tokens kept. */
  after?: number;
}

interface Reader<T> {
  readonly sub: Subscriber<TokenEvent<T>>;
  next: number;
}

const END = Symbol('end');
const NO_READERS: readonly never[] = Object.freeze([]);
const UTC = { zone: FixedOffsetZone.utcInstance };
const DEFAULT_RETENTION_MS = 10 * 60_000;

// DateTimes are immutable, and jobs made in a burst share their millisecond: a two-slot cache spares a
// luxon construction (about 0.3 us) on most snapshots and events.
let cacheMsA = NaN;
let cacheDtA: DateTime | undefined;
let cacheMsB = NaN;
let cacheDtB: DateTime | undefined;

function utc(ms: number): DateTime {
  if (ms === cacheMsA) return cacheDtA!;
  if (ms === cacheMsB) return cacheDtB!;
  const dt = DateTime.fromMillis(ms, UTC);
  cacheMsB = cacheMsA;
  cacheDtB = cacheDtA;
  cacheMsA = ms;
  cacheDtA = dt;
  return dt;
}

class Job<T, P> {
  state: JobState = 'queued';
  error: string | undefined = undefined;
  updatedAt: number;
  nextSeq = 0;
  // Raw tokens, not TokenEvents: with no local reader (a producer feeding a shared backend) a token costs
  // no allocation here; events are built on delivery.
  tokens: T[] | undefined = undefined;
  readers: readonly Reader<T>[] = NO_READERS;
  delivering = false;
  pending: Array<TokenEvent<T> | typeof END> | undefined = undefined;
  status: BehaviorSubject<JobStatus> | undefined = undefined;
  payload: P | undefined = undefined;
  hasPayload = false;
  started = false;
  producer: Subscription | undefined = undefined;
  abort: AbortController | undefined = undefined;
  deadline: Deadline<Job<T, P>> | undefined = undefined;
  idle: Deadline<Job<T, P>> | undefined = undefined;
  /** Set while a shared backend stores this job's end; its readers end when it settles. */
  ending: Promise<void> | undefined = undefined;

  constructor(
    readonly id: string,
    readonly createdAt: number,
  ) {
    this.updatedAt = createdAt;
  }
}

/**
 * Tracks streaming jobs between the two calls of the dual-call pattern. Each job holds its status (a
 * BehaviorSubject, made on first `state$`) and its tokens (a replay buffer in front of its live readers).
 *
 * @typeParam T - the token type.
 * @typeParam P - the payload type.
 * @example
 * const registry = new JobRegistry<string>();
 * const id = registry.createJob();
 * registry.tokens$(id).subscribe(({ seq, token }) => console.log(seq, token));
 * registry.emit(id, 'hello');
 * registry.updateState(id, 'completed');
 */
export class JobRegistry<T = unknown, P = unknown> {
  /** Every create, state change and removal, in order (hot: subscribe before acting). With a shared backend, other processes' events too. */
  readonly events$: Observable<RegistryEvent>;

  private readonly jobs = new Map<string, Job<T, P>>();
  private readonly events = new Subject<RegistryEvent>();
  private readonly destroy$ = new Subject<void>();
  private eventQueue: RegistryEvent[] | undefined;
  private dispatching = false;
  private disposed = false;
  private closing = false;
  private readonly prefix: string;
  private readonly replayLimit: number;
  private readonly retentionMs: number;
  private readonly claimMs: number;
  private readonly abandonMs: number;
  private readonly backend: RegistryBackend;
  private readonly shared: boolean;
  private readonly notFoundHint: string;
  private readonly deadlines = new Deadlines<Job<T, P>>((job) => this.expire(job));
  private readonly idleDeadlines = new Deadlines<Job<T, P>>((job) => this.abandon(job));

  /** @throws InvalidArgumentError for a malformed option. */
  constructor(options: JobRegistryOptions = {}) {
    if (options === null || typeof options !== 'object')
      throw new InvalidArgumentError('options must be an object');
    const prefix = options.idPrefix ?? 'job-';
    if (typeof prefix !== 'string' || (prefix !== '' && !isValidJobId(prefix)) || prefix.length > 64)
      throw new InvalidArgumentError(
        `idPrefix must be up to 64 letters, digits, '.', '_', ':' or '-', got ${JSON.stringify(prefix)}`,
      );
    const limit = options.replayLimit ?? Infinity;
    if (typeof limit !== 'number' || !(limit === Infinity || (Number.isInteger(limit) && limit >= 0)))
      throw new InvalidArgumentError(
        `replayLimit must be a whole number >= 0 or Infinity, got ${String(limit)}`,
      );
    this.prefix = prefix;
    this.replayLimit = limit;
    this.retentionMs =
      options.retention === undefined ? DEFAULT_RETENTION_MS : toMillis(options.retention, 'retention');
    this.claimMs =
      options.claimTimeout === undefined ? Infinity : toMillis(options.claimTimeout, 'claimTimeout');
    this.abandonMs =
      options.abandonTimeout === undefined ? Infinity : toMillis(options.abandonTimeout, 'abandonTimeout');
    this.notFoundHint =
      this.retentionMs === Infinity
        ? 'it was never created here or was removed'
        : `it may have expired; retention is ${describeMs(this.retentionMs)}`;
    this.backend = options.backend ?? memoryBackend();
    this.shared = this.backend.shared;
    const host: BackendHost = {
      replayLimit: this.replayLimit,
      retentionMs: this.retentionMs,
      holds: (jobId) => this.jobs.has(jobId),
      liveJobs: () => {
        const ids: string[] = [];
        for (const job of this.jobs.values()) if (!isTerminal(job.state)) ids.push(job.id);
        return ids;
      },
      describe: (jobId) => {
        const job = this.jobs.get(jobId);
        if (job === undefined) return undefined;
        const held: HeldJob = { state: job.state, createdAt: job.createdAt, tokenCount: job.nextSeq };
        if (job.error !== undefined) held.error = job.error;
        return held;
      },
      adoptEnd: (jobId, state, error) => {
        const job = this.jobs.get(jobId);
        if (job === undefined || job.state === state) return;
        if (!isTerminal(job.state)) this.transition(job, state, endReason(state, error), false);
        else {
          // Readers here already saw this process's end; the record now says what every process says.
          job.state = state;
          job.error = endReason(state, error);
        }
      },
      end: (jobId, state, error) => {
        const job = this.jobs.get(jobId);
        if (job === undefined || isTerminal(job.state)) return false;
        this.transition(job, state, error);
        return true;
      },
    };
    this.backend.open(host);
    this.events$ = this.shared
      ? merge(this.events, this.backend.events$.pipe(takeUntil(this.destroy$)))
      : this.events.asObservable();
  }

  /** Whether `dispose()` was called. */
  get isDisposed(): boolean {
    return this.disposed || this.closing;
  }

  /** Resolves once the backend can serve; rejects (naming the store) when it cannot be reached. */
  ready(): Promise<void> {
    if (this.disposed) return Promise.reject(new RegistryDisposedError('ready'));
    return this.backend.ready();
  }

  /** Resolves when every write so far reached the backend, so other processes see it. Instant in memory. */
  flush(): Promise<void> {
    if (this.disposed) return Promise.reject(new RegistryDisposedError('flush'));
    return this.backend.flush();
  }

  /**
   * Creates a job in state `queued` and returns its id (`idPrefix` + uuid v4). Emits `created`.
   *
   * @throws InvalidArgumentError for a malformed `init`.
   */
  createJob(init?: CreateJobInit<P>): string {
    if (this.disposed) throw new RegistryDisposedError('createJob');
    let claimMs = this.claimMs;
    if (init !== undefined) {
      if (init === null || typeof init !== 'object')
        throw new InvalidArgumentError('createJob(init) takes an object { payload?, claimTimeout? }');
      if (init.claimTimeout !== undefined) claimMs = toMillis(init.claimTimeout, 'claimTimeout');
    }
    const id = this.prefix + uuidv4();
    // Flatten the concatenated id now: a cons-string costs several times the flat one for the job's life.
    id.charCodeAt(0);
    const now = Date.now();
    const job = new Job<T, P>(id, now);
    if (init !== undefined && init.payload !== undefined) {
      job.payload = init.payload;
      job.hasPayload = true;
    }
    // The backend write goes first: when it refuses (BackendError), no half-created job is left here.
    if (this.shared) this.backend.jobCreated({ id, createdAt: now });
    this.jobs.set(id, job);
    if (claimMs !== Infinity) job.deadline = this.deadlines.schedule(job, claimMs);
    if (this.events.observed) this.publish({ type: 'created', jobId: id, at: utc(now) });
    return id;
  }

  /** Whether this process holds a job with this id. Lookups, like every method, throw `RegistryDisposedError` after `dispose()`. */
  hasJob(id: string): boolean {
    if (this.disposed) throw new RegistryDisposedError('hasJob');
    return this.jobs.has(id);
  }

  /** A snapshot of a job this process holds, or `undefined`. */
  getJob(id: string): JobSnapshot | undefined {
    if (this.disposed) throw new RegistryDisposedError('getJob');
    const job = this.jobs.get(id);
    return job === undefined ? undefined : this.snapshot(job);
  }

  /** The state of a job this process holds, or `undefined`. */
  getJobState(id: string): JobState | undefined {
    if (this.disposed) throw new RegistryDisposedError('getJobState');
    return this.jobs.get(id)?.state;
  }

  /** Ids of the jobs this process holds, oldest first. */
  jobIds(): string[] {
    if (this.disposed) throw new RegistryDisposedError('jobIds');
    return [...this.jobs.keys()];
  }

  /** How many jobs this process holds. */
  jobCount(): number {
    if (this.disposed) throw new RegistryDisposedError('jobCount');
    return this.jobs.size;
  }

  /**
   * Moves a job to `state`. Allowed: `queued -> running|completed|failed|cancelled`,
   * `running -> completed|failed|cancelled`; the same state is a no-op. Emits `stateChanged`.
   *
   * @param error - the reason, kept for `failed` and `cancelled`.
   * @throws InvalidStateError when `state` is not a JobState; JobNotFoundError; InvalidTransitionError.
   */
  updateState(id: string, state: JobState, error?: string): void {
    if (!isJobState(state)) throw new InvalidStateError(state);
    if (error !== undefined && typeof error !== 'string')
      throw new InvalidArgumentError('updateState error must be a string');
    const job = this.require(id, 'updateState');
    if (job.state === state) return;
    if (!canTransition(job.state, state)) throw new InvalidTransitionError(id, job.state, state);
    this.claim(job);
    this.transition(job, state, endReason(state, error));
  }

  /**
   * Appends a token and returns its seq. A `queued` job becomes `running`.
   *
   * @throws JobNotFoundError; JobClosedError when the job is terminal.
   */
  emit(id: string, token: T): number {
    const job = this.jobs.get(id);
    if (job === undefined) throw this.missing(id, 'emit');
    if (job.state !== 'running') this.reopen(job);
    return this.push(job, token);
  }

  /**
   * The producer side of a job as an RxJS Observer: `next` emits (dropped once the job is terminal),
   * `error(e)` fails the job with `e`'s message, `complete()` completes it.
   *
   * @throws JobNotFoundError
   */
  getTokenSender(id: string): Observer<T> {
    const job = this.require(id, 'getTokenSender');
    this.claim(job);
    return {
      next: (token: T) => this.produce(job, token),
      error: (e: unknown) => {
        if (!isTerminal(job.state) && !this.disposed) this.transition(job, 'failed', messageOf(e));
      },
      complete: () => {
        if (!isTerminal(job.state) && !this.disposed) this.transition(job, 'completed', undefined);
      },
    };
  }

  /**
   * Pipes a producer into the job: each value is emitted, completion completes the job, an error fails it.
   * Cancelling or removing the job unsubscribes the source.
   *
   * @throws JobNotFoundError; JobClosedError when terminal; JobBusyError when the job has a producer.
   */
  setTokenSource(id: string, source: ObservableInput<T>): Subscription {
    const job = this.require(id, 'setTokenSource');
    if (isTerminal(job.state)) throw new JobClosedError(id, job.state);
    if (job.started) throw new JobBusyError(id);
    job.started = true;
    this.claim(job);
    return this.attach(job, () => source);
  }

  /**
   * Stores a payload for deferred execution.
   *
   * @throws JobNotFoundError; JobClosedError when the job is terminal.
   */
  setPayload(id: string, payload: P): void {
    const job = this.require(id, 'setPayload');
    if (isTerminal(job.state)) throw new JobClosedError(id, job.state);
    job.payload = payload;
    job.hasPayload = true;
  }

  /**
   * Returns the payload and forgets it: a second call gives `undefined`.
   *
   * @throws JobNotFoundError
   */
  takePayload(id: string): P | undefined {
    const job = this.require(id, 'takePayload');
    const payload = job.payload;
    job.payload = undefined;
    job.hasPayload = false;
    return payload;
  }

  /**
   * Starts `executor(payload, { jobId, signal })` once per job (later calls join the running one) and
   * returns `tokens$(id)`. A throw or rejection fails the job; `signal` aborts on cancel or removal.
   *
   * @throws JobNotFoundError
   */
  executeAndStream(id: string, executor: Executor<T, P>): Observable<TokenEvent<T>> {
    if (typeof executor !== 'function')
      throw new InvalidArgumentError('executeAndStream needs an executor function');
    const job = this.require(id, 'executeAndStream');
    if (!job.started && !isTerminal(job.state)) {
      job.started = true;
      this.claim(job);
      const payload = job.payload;
      job.payload = undefined;
      job.hasPayload = false;
      const abort = new AbortController();
      job.abort = abort;
      this.attach(job, () => executor(payload, { jobId: id, signal: abort.signal }));
    }
    return this.tokens$(id);
  }

  /**
   * Removes a job (cancelling it first when it is not terminal) and returns its last snapshot; emits
   * `removed`. Unknown ids give `undefined`, so it is idempotent.
   */
  removeJob(id: string): JobSnapshot | undefined {
    if (this.disposed) throw new RegistryDisposedError('removeJob');
    const job = this.jobs.get(id);
    if (job === undefined) return undefined;
    if (!isTerminal(job.state)) this.transition(job, 'cancelled', 'job was removed');
    if (job.deadline !== undefined) {
      this.deadlines.cancel(job.deadline);
      job.deadline = undefined;
    }
    job.payload = undefined;
    this.jobs.delete(id);
    if (this.shared) this.backend.jobRemoved(id);
    const now = Date.now();
    if (this.events.observed) this.publish({ type: 'removed', jobId: id, at: utc(now) });
    return this.snapshot(job);
  }

  /**
   * The job's status now, then each change; completes after a terminal status or on removal.
   * Errors with `JobNotFoundError` for an unknown id.
   */
  state$(id: string): Observable<JobStatus> {
    return new Observable<JobStatus>((sub) => {
      if (this.disposed) return sub.error(new RegistryDisposedError('state$'));
      const job = this.jobs.get(id);
      if (job === undefined) {
        if (this.shared && isValidJobId(id)) return this.backend.state$(id).subscribe(sub);
        return sub.error(this.notFound(id));
      }
      if (isTerminal(job.state)) {
        sub.next(this.statusOf(job));
        return sub.complete();
      }
      const status = (job.status ??= new BehaviorSubject(this.statusOf(job)));
      const inner = status.subscribe(sub);
      return () => {
        inner.unsubscribe();
        if (job.status === status && !status.observed) job.status = undefined;
      };
    });
  }

  /**
   * The job's tokens: those kept with `seq > after` (all kept when absent), then live ones, with no gap
   * and no duplicate. Completes when the job completes; errors with `JobFailedError`, `JobCancelledError`,
   * `JobNotFoundError`, or `ReplayExpiredError` when `after` is older than the replay buffer keeps.
   *
   * @throws InvalidArgumentError at once for an `after` that is not a whole number >= 0.
   */
  tokens$(id: string, options?: TokensOptions): Observable<TokenEvent<T>> {
    const after = resumePoint(options, 'tokens$');
    return new Observable<TokenEvent<T>>((sub) => {
      if (this.disposed) return sub.error(new RegistryDisposedError('tokens$'));
      const job = this.jobs.get(id);
      if (job === undefined) {
        if (this.shared && isValidJobId(id))
          return (this.backend.tokens$(id, after) as Observable<TokenEvent<T>>).subscribe(sub);
        return sub.error(this.notFound(id));
      }
      return this.read(job, sub, after);
    });
  }

  /**
   * Checks, before streaming, that a job exists and that `after` is still in its replay buffer, so an HTTP
   * layer can answer 404 or 410 before it sends headers. Resolves with the job's snapshot.
   *
   * @throws (rejects) JobNotFoundError, ReplayExpiredError, InvalidArgumentError.
   */
  async checkReadable(id: string, options?: TokensOptions): Promise<JobSnapshot> {
    if (this.disposed) throw new RegistryDisposedError('checkReadable');
    const after = resumePoint(options, 'checkReadable');
    const job = this.jobs.get(id);
    if (job !== undefined) {
      const first = this.firstKept(job);
      if (after !== undefined && after + 1 < first) throw new ReplayExpiredError(id, after, first);
      return this.snapshot(job);
    }
    if (this.shared && isValidJobId(id)) {
      const snap = await this.backend.findJob(id);
      if (snap !== undefined) {
        const first = after === undefined ? undefined : await this.backend.firstKept(id);
        if (after !== undefined && first !== undefined && after + 1 < first)
          throw new ReplayExpiredError(id, after, first);
        return snap;
      }
    }
    throw this.notFound(id);
  }

  /**
   * Cancels a job: `true` when it moved to `cancelled`, `false` when it was already terminal. With a shared
   * backend it reaches a job held by any process, and stops its producer there.
   *
   * @throws (rejects) JobNotFoundError for an unknown id.
   */
  async cancel(id: string, reason?: string): Promise<boolean> {
    if (this.disposed) throw new RegistryDisposedError('cancel');
    if (reason !== undefined && typeof reason !== 'string')
      throw new InvalidArgumentError('cancel reason must be a string');
    const why = reason ?? 'job was cancelled';
    const job = this.jobs.get(id);
    if (job !== undefined) {
      if (isTerminal(job.state)) return false;
      this.transition(job, 'cancelled', why);
      // With a shared backend the answer waits until the end is stored, and says what was stored: an
      // end another process wrote first wins there, and this cancel did not happen.
      if (job.ending !== undefined) await job.ending;
      return job.state === 'cancelled' && job.error === why;
    }
    if (this.shared && isValidJobId(id)) {
      const moved = await this.backend.cancel(id, why);
      if (moved !== undefined) return moved;
    }
    throw this.notFound(id);
  }

  /** Like `getJob`, across every process when a shared backend is set. */
  async findJob(id: string): Promise<JobSnapshot | undefined> {
    if (this.disposed) throw new RegistryDisposedError('findJob');
    const job = this.jobs.get(id);
    if (job !== undefined) return this.snapshot(job);
    if (this.shared && isValidJobId(id)) return this.backend.findJob(id);
    return undefined;
  }

  /** Snapshots of every job, across every process when a shared backend is set; oldest first. */
  async listJobs(): Promise<JobSnapshot[]> {
    if (this.disposed) throw new RegistryDisposedError('listJobs');
    const local = [...this.jobs.values()].map((job) => this.snapshot(job));
    if (!this.shared) return local;
    const remote = await this.backend.listJobs();
    const seen = new Set(local.map((s) => s.id));
    return [...local, ...remote.filter((s) => !seen.has(s.id))].sort(
      (a, b) => a.createdAt.toMillis() - b.createdAt.toMillis(),
    );
  }

  /**
   * Completes every stream (`tokens$`, `state$`, `events$`), moves jobs still live to `cancelled`
   * ("registry disposed") and aborts their executors, clears every timer and closes the backend; the
   * process can then exit by itself. Later calls throw `RegistryDisposedError`. Idempotent.
   */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.closing = true;
    let failure: unknown;
    for (const job of this.jobs.values()) {
      try {
        if (!isTerminal(job.state)) this.transition(job, 'cancelled', 'registry disposed');
        // dispose() completes every stream now, without waiting for the backend to store the end.
        if (job.ending !== undefined) {
          job.ending = undefined;
          this.endReaders(job);
        }
      } catch (e) {
        // A subscriber threw; every other job still ends and the backend still closes. Rethrown below.
        failure ??= e;
      }
    }
    this.disposed = true;
    this.deadlines.clear();
    this.idleDeadlines.clear();
    for (const job of this.jobs.values()) job.deadline = job.idle = undefined;
    this.jobs.clear();
    this.events.complete();
    this.destroy$.next();
    this.destroy$.complete();
    // A backend's close() sends (or gives up on, after a bounded wait) the writes still pending.
    await this.backend.close();
    if (failure !== undefined) throw failure;
  }

  // ---- internals ----

  private require(id: string, method: string): Job<T, P> {
    const job = this.jobs.get(id);
    if (job === undefined) throw this.missing(id, method);
    return job;
  }

  private missing(id: string, method: string): Error {
    return this.disposed ? new RegistryDisposedError(method) : this.notFound(id);
  }

  private notFound(id: string): JobNotFoundError {
    return new JobNotFoundError(typeof id === 'string' ? id : String(id), this.notFoundHint);
  }

  private reopen(job: Job<T, P>): void {
    if (job.state === 'queued') {
      this.claim(job);
      this.transition(job, 'running', undefined);
    } else throw new JobClosedError(job.id, job.state);
  }

  private claim(job: Job<T, P>): void {
    if (job.deadline !== undefined && job.state === 'queued') {
      this.deadlines.cancel(job.deadline);
      job.deadline = undefined;
    }
  }

  // A token from a producer (executor, token source or sender). A write the backend refuses cannot be
  // thrown back into the producer's Observable (it would surface as an uncaught error and leave the job
  // running with tokens missing): the job fails instead, with the backend's reason.
  private produce(job: Job<T, P>, token: T): void {
    if (isTerminal(job.state) || this.disposed) return;
    if (job.state === 'queued') this.transition(job, 'running', undefined);
    try {
      this.push(job, token);
    } catch (e) {
      if (!isTerminal(job.state)) this.transition(job, 'failed', messageOf(e));
    }
  }

  private push(job: Job<T, P>, token: T): number {
    const seq = job.nextSeq;
    // The backend write goes first: when it refuses (BackendError), nothing has changed here.
    if (this.shared) this.backend.tokenAppended(job.id, seq, token);
    job.nextSeq = seq + 1;
    const limit = this.replayLimit;
    if (limit === Infinity) {
      if (job.tokens === undefined) job.tokens = [token];
      else job.tokens.push(token);
    } else if (limit !== 0) {
      (job.tokens ??= [])[seq % limit] = token;
    }
    if (job.readers.length !== 0) this.deliver(job, { seq, token });
    return seq;
  }

  // A reader that emits from inside its own callback must not reorder what the others see: nested
  // deliveries queue behind the current one.
  private deliver(job: Job<T, P>, ev: TokenEvent<T>): void {
    if (job.delivering) {
      (job.pending ??= []).push(ev);
      return;
    }
    job.delivering = true;
    try {
      this.fanOut(job.readers, ev);
      const pending = job.pending;
      if (pending !== undefined) {
        for (let item = pending.shift(); item !== undefined; item = pending.shift()) {
          if (item === END) this.endReadersNow(job);
          else this.fanOut(job.readers, item);
        }
        job.pending = undefined;
      }
    } finally {
      job.delivering = false;
    }
  }

  private fanOut(readers: readonly Reader<T>[], ev: TokenEvent<T>): void {
    const seq = ev.seq;
    for (let i = 0; i < readers.length; i++) {
      const r = readers[i]!;
      if (seq >= r.next) {
        r.next = seq + 1;
        r.sub.next(ev);
      }
    }
  }

  private endReaders(job: Job<T, P>): void {
    if (job.readers.length === 0) return;
    if (job.delivering) (job.pending ??= []).push(END);
    else this.endReadersNow(job);
  }

  private endReadersNow(job: Job<T, P>): void {
    const readers = job.readers;
    job.readers = NO_READERS;
    const error = this.endError(job);
    for (const r of readers) {
      if (error === undefined) r.sub.complete();
      else r.sub.error(error);
    }
  }

  private endError(job: Job<T, P>): Error | undefined {
    // dispose() completes every stream, as the contract says; the state still reads `cancelled`.
    if (this.closing) return undefined;
    if (job.state === 'failed') return new JobFailedError(job.id, job.error ?? 'job failed');
    if (job.state === 'cancelled') return new JobCancelledError(job.id, job.error ?? 'job was cancelled');
    return undefined;
  }

  private firstKept(job: Job<T, P>): number {
    return this.replayLimit === Infinity ? 0 : Math.max(0, job.nextSeq - this.replayLimit);
  }

  private read(
    job: Job<T, P>,
    sub: Subscriber<TokenEvent<T>>,
    after: number | undefined,
  ): (() => void) | undefined {
    this.claim(job);
    let next = this.firstKept(job);
    if (after !== undefined) {
      if (after + 1 < next) {
        sub.error(new ReplayExpiredError(job.id, after, next));
        return undefined;
      }
      next = after + 1;
    }
    const limit = this.replayLimit;
    while (next < job.nextSeq) {
      if (sub.closed) return undefined;
      const first = this.firstKept(job);
      // Only reachable when this reader's own callback emits past a bounded buffer during replay.
      if (next < first) {
        sub.error(new ReplayExpiredError(job.id, next - 1, first));
        return undefined;
      }
      sub.next({ seq: next, token: job.tokens![limit === Infinity ? next : next % limit]! });
      next++;
    }
    if (sub.closed) return undefined;
    if (isTerminal(job.state) && job.ending === undefined) {
      const error = this.endError(job);
      if (error === undefined) sub.complete();
      else sub.error(error);
      return undefined;
    }
    const reader: Reader<T> = { sub, next };
    job.readers = job.readers.length === 0 ? [reader] : [...job.readers, reader];
    if (job.idle !== undefined) {
      this.idleDeadlines.cancel(job.idle);
      job.idle = undefined;
    }
    return () => {
      const rest = job.readers.filter((r) => r !== reader);
      job.readers = rest.length === 0 ? NO_READERS : rest;
      if (rest.length === 0 && this.abandonMs !== Infinity && !isTerminal(job.state) && !this.disposed)
        job.idle = this.idleDeadlines.schedule(job, this.abandonMs);
    };
  }

  private attach(job: Job<T, P>, start: () => ObservableInput<T>): Subscription {
    let done = false;
    let subscription: Subscription | undefined;
    const finish = (state: 'completed' | 'failed', error: string | undefined): void => {
      done = true;
      job.producer = undefined;
      job.abort = undefined;
      if (!isTerminal(job.state) && !this.disposed) this.transition(job, state, error);
    };
    try {
      subscription = from(start()).subscribe({
        next: (token) => this.produce(job, token),
        error: (e: unknown) => finish('failed', messageOf(e)),
        complete: () => finish('completed', undefined),
      });
    } catch (e) {
      // The executor threw, or returned something that is not an ObservableInput.
      finish('failed', messageOf(e));
      return new Observable().subscribe();
    }
    if (done || isTerminal(job.state)) subscription.unsubscribe();
    else job.producer = subscription;
    return subscription;
  }

  private transition(job: Job<T, P>, to: JobState, error: string | undefined, write = true): void {
    const from = job.state;
    const at = Date.now();
    const stored =
      this.shared && write
        ? (this.backend.stateChanged(job.id, from, to, error, at) as Promise<void> | undefined)
        : undefined;
    job.state = to;
    job.error = error;
    job.updatedAt = at;
    const terminal = isTerminal(to);
    if (terminal) this.settle(job, stored);
    const status = job.status;
    if (status !== undefined) {
      status.next(this.statusOf(job));
      if (terminal) {
        job.status = undefined;
        status.complete();
      }
    }
    if (this.events.observed) {
      const ev: RegistryEvent = { type: 'stateChanged', jobId: job.id, from, to, at: utc(at) };
      if (error !== undefined) ev.error = error;
      this.publish(ev);
    }
  }

  // `stored` settles when a shared backend has the end (or has told this process the end it already
  // had): token readers end only then, with what every process reports.
  private settle(job: Job<T, P>, stored?: Promise<void>): void {
    if (job.idle !== undefined) this.idleDeadlines.cancel(job.idle);
    job.idle = undefined;
    if (job.deadline !== undefined) this.deadlines.cancel(job.deadline);
    job.deadline =
      this.retentionMs === Infinity || this.disposed
        ? undefined
        : this.deadlines.schedule(job, this.retentionMs);
    const producer = job.producer;
    const abort = job.abort;
    job.producer = undefined;
    job.abort = undefined;
    job.payload = undefined;
    if (producer !== undefined) producer.unsubscribe();
    if (abort !== undefined && !abort.signal.aborted)
      abort.abort(this.endError(job) ?? new JobCancelledError(job.id, job.error ?? 'job ended'));
    if (stored === undefined) this.endReaders(job);
    else {
      const ending = stored.then(() => {
        if (job.ending === ending) job.ending = undefined;
        this.endReaders(job);
      });
      job.ending = ending;
    }
  }

  private abandon(job: Job<T, P>): void {
    job.idle = undefined;
    if (this.jobs.get(job.id) === job && !isTerminal(job.state) && job.readers.length === 0)
      this.transition(job, 'cancelled', 'no reader came back before its abandonTimeout');
  }

  private expire(job: Job<T, P>): void {
    job.deadline = undefined;
    if (this.jobs.get(job.id) !== job) return;
    if (isTerminal(job.state)) this.removeJob(job.id);
    else if (job.state === 'queued')
      this.transition(job, 'cancelled', 'no reader claimed the job before its claimTimeout');
  }

  private statusOf(job: Job<T, P>): JobStatus {
    const status: JobStatus = { state: job.state, at: utc(job.updatedAt) };
    if (job.error !== undefined) status.error = job.error;
    return status;
  }

  private snapshot(job: Job<T, P>): JobSnapshot {
    const snap: JobSnapshot = {
      id: job.id,
      state: job.state,
      createdAt: utc(job.createdAt),
      updatedAt: utc(job.updatedAt),
      tokenCount: job.nextSeq,
    };
    if (job.error !== undefined) snap.error = job.error;
    return snap;
  }

  private publish(ev: RegistryEvent): void {
    if (this.dispatching) {
      (this.eventQueue ??= []).push(ev);
      return;
    }
    this.dispatching = true;
    try {
      this.events.next(ev);
      const queue = this.eventQueue;
      if (queue !== undefined) {
        for (let next = queue.shift(); next !== undefined; next = queue.shift()) this.events.next(next);
        this.eventQueue = undefined;
      }
    } finally {
      this.dispatching = false;
    }
  }
}

/** The `after` of `tokens$` / `checkReadable`, checked: a whole number >= 0, or absent. */
function resumePoint(options: TokensOptions | undefined, method: string): number | undefined {
  const after = options?.after;
  if (after !== undefined && !(typeof after === 'number' && Number.isSafeInteger(after) && after >= 0))
    throw new InvalidArgumentError(
      `${method} after must be a whole number >= 0 (a seq already seen), got ${String(after)}`,
    );
  return after;
}

function endReason(state: JobState, error: string | undefined): string | undefined {
  if (state === 'failed') return error ?? 'job failed';
  if (state === 'cancelled') return error ?? 'job was cancelled';
  return undefined;
}

function describeMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}
