import { BehaviorSubject, Observable, Subject, merge, takeUntil } from 'rxjs';
import type { ObservableInput, Observer, Subscriber, Subscription } from 'rxjs';
import type { BackendStats, RegistryBackend, StoredJob } from './backend.js';
import type { StreamStore } from './streams.js';
import { toMillis, type DurationInput } from './duration.js';
import {
  InvalidArgumentError,
  InvalidStateError,
  InvalidTransitionError,
  JobBusyError,
  JobClosedError,
  JobNotFoundError,
  RegistryDisposedError,
  ReplayExpiredError,
} from './errors.js';
import { idMaker, isValidJobId } from './ids.js';
import { Job } from './job.js';
import { Lifecycle, REPLACED_BY_KEY, aheadError, endReason } from './lifecycle.js';
import {
  resolveOptions,
  type CreateJobInit,
  type JobRegistryOptions,
  type Settings,
  type TokensOptions,
} from './options.js';
import { canTransition, isJobState, isTerminal } from './states.js';
import { describeMs, utc } from './time.js';
import type {
  Executor,
  JobProgress,
  JobSnapshot,
  JobState,
  JobStatus,
  RegistryEvent,
  TokenEvent,
} from './types.js';

export type { JobRegistryOptions, CreateJobInit, TokensOptions } from './options.js';
export type { ExecutionContext, Executor, PayloadExecutor } from './types.js';

/** What `stats()` reports. */
export interface RegistryStats {
  /** Jobs this process holds, by state. */
  jobs: Record<JobState, number>;
  /** Executors in this process. */
  executors: {
    /** Jobs waiting for an executor slot (`concurrency`). */
    waiting: number;
    /** Executors running now. */
    running: number;
  };
  /** Since this registry started: jobs created here, tokens appended here, jobs that ended here by state. */
  totals: {
    /** Jobs created. */
    created: number;
    /** Tokens appended. */
    tokens: number;
    /** Jobs that ended `completed`. */
    completed: number;
    /** Jobs that ended `failed`. */
    failed: number;
    /** Jobs that ended `cancelled`. */
    cancelled: number;
  };
  /** The shared backend's health, when it reports it. */
  backend?: BackendStats;
}

const REMOTE = Symbol('remote');
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
  /**
   * Token counts of live jobs this process holds, coalesced to at most one per job per
   * `progressInterval` (and the exact count just before a job's end). Hot; costs nothing while unwatched.
   */
  readonly progress$: Observable<JobProgress>;

  private readonly life: Lifecycle<T, P>;
  private readonly jobs: Map<string, Job<T, P>>;
  private readonly destroy$ = new Subject<void>();
  private disposed = false;
  private closing = false;
  private readonly settings: Settings;
  private readonly backend: RegistryBackend;
  private readonly shared: boolean;
  private readonly notFoundHint: string;
  /** A draw of an id: `idPrefix` + a uuid v4. */
  private readonly newId: () => string;
  /** A new job's id, when it has no key: a draw, or the backend's pick among draws (`idForJob`). */
  private readonly unkeyedId: () => string;

  /** @throws InvalidArgumentError for a malformed option. */
  constructor(options: JobRegistryOptions = {}) {
    const settings = resolveOptions(options);
    this.settings = settings;
    this.backend = settings.backend;
    this.shared = this.backend.shared;
    const newId = idMaker(settings.prefix);
    this.newId = newId;
    const idForJob = this.backend.idForJob;
    this.unkeyedId = this.shared && idForJob !== undefined ? () => idForJob.call(this.backend, newId) : newId;
    this.life = new Lifecycle<T, P>(settings, this.backend);
    this.jobs = this.life.jobs;
    this.notFoundHint =
      settings.retentionMs === Infinity
        ? 'it was never created here or was removed'
        : `it may have expired; retention is ${describeMs(settings.retentionMs)}`;
    this.backend.open(this.life.host());
    const progress = this.life.progress.progress$;
    this.progress$ =
      this.shared && this.backend.progress$ !== undefined
        ? merge(progress, this.backend.progress$.pipe(takeUntil(this.destroy$)))
        : progress;
    const own = this.life.events.subject.asObservable();
    this.events$ = this.shared ? merge(own, this.backend.events$.pipe(takeUntil(this.destroy$))) : own;
  }

  /**
   * Where the shared backend keeps Durable Streams, when it keeps them (see `job-registry/durable-streams`);
   * `undefined` in memory.
   */
  get streamStore(): StreamStore | undefined {
    return this.backend.streams;
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
   * A keyed job (`init.key`) is refused at once with `JobBusyError` while this process holds a live job
   * of its key (`keyConflict: 'refuse'`). With a shared backend the store decides between processes: a
   * create that loses there ends `cancelled` (its error names the key) once the create reaches the store;
   * `await registry.claimed(id)` tells (it rejects with `JobBusyError`).
   *
   * @throws InvalidArgumentError for a malformed `init`; CapacityError when `maxJobs` is reached;
   * JobBusyError for a key this process holds a live job of (`keyConflict: 'refuse'`).
   */
  createJob(init?: CreateJobInit<P>): string {
    if (this.disposed) throw new RegistryDisposedError('createJob');
    let claimMs = this.settings.claimMs;
    let owner: string | undefined;
    let key: string | undefined;
    if (init !== undefined) {
      if (init === null || typeof init !== 'object')
        throw new InvalidArgumentError(
          'createJob(init) takes an object { payload?, claimTimeout?, owner?, key? }',
        );
      if (init.claimTimeout !== undefined) claimMs = toMillis(init.claimTimeout, 'claimTimeout');
      owner = init.owner;
      if (owner !== undefined && !(typeof owner === 'string' && owner.length > 0 && owner.length <= 256))
        throw new InvalidArgumentError('createJob owner must be a string of 1 to 256 characters');
      key = init.key;
      if (key !== undefined) this.checkKey(key);
    }
    const holder = key === undefined ? undefined : this.life.liveByKey.get(key);
    if (holder !== undefined && this.settings.keyConflict === 'refuse')
      throw new JobBusyError(holder.id, key);
    if (this.jobs.size + (this.backend.streams?.open ?? 0) >= this.settings.maxJobs) this.life.makeRoom();
    const id = key === undefined ? this.unkeyedId() : this.keyedId(key);
    const now = this.settings.clock.now();
    const job = new Job<T, P>(id, this.settings.replayLimit, now);
    if (init !== undefined && init.payload !== undefined) {
      job.payload = init.payload;
      job.hasPayload = true;
    }
    // The backend write goes first: when it refuses (BackendError), no half-created job is left here.
    if (this.shared) {
      const stored: StoredJob = { id, createdAt: now };
      if (owner !== undefined) stored.owner = owner;
      if (key !== undefined) stored.key = key;
      this.backend.jobCreated(stored);
    }
    this.jobs.set(id, job);
    this.life.totals.created++;
    if (owner !== undefined) {
      job.owner = owner;
      this.life.liveByOwner.set(owner, (this.life.liveByOwner.get(owner) ?? 0) + 1);
    }
    if (claimMs !== Infinity) this.life.timers.startClaim(job, claimMs);
    if (key !== undefined) {
      // The key is the new job's before anything is published: a subscriber reacting to the events below
      // finds it taken. The live job it replaces (keyConflict: 'replace') ends after.
      job.key = key;
      this.life.liveByKey.set(key, job);
    }
    if (this.life.events.subject.observed) {
      const ev: RegistryEvent = { type: 'created', jobId: id, at: utc(now) };
      if (owner !== undefined) ev.owner = owner;
      if (key !== undefined) ev.key = key;
      this.life.events.publish(ev);
    }
    if (holder !== undefined && !isTerminal(holder.state))
      this.life.transition(holder, 'cancelled', REPLACED_BY_KEY);
    return id;
  }

  /** An id for a job of `key`: one the backend can keep beside the key (see `idForKey`). */
  private keyedId(key: string): string {
    const idForKey = this.backend.idForKey;
    return this.shared && idForKey !== undefined
      ? idForKey.call(this.backend, key, this.newId)
      : this.newId();
  }

  /**
   * Resolves once the store gave job `id`, created here, its key (see `createJob({ key })`); rejects with
   * `JobBusyError` (the live job's id and the key) when another process's live job of the key came first
   * and this job ended `cancelled`. In memory, and for a job without a key, resolves at once: there
   * `createJob` decides. A route answers `409` from it as from `createJob`.
   *
   * @throws (rejects) JobNotFoundError for a job this process does not hold; BackendError when the create
   * did not reach the store.
   * @example
   * const id = registry.createJob({ key: chatId, payload });
   * await registry.claimed(id); // JobBusyError: another process answers this chat
   */
  async claimed(id: string): Promise<void> {
    const job = this.require(id, 'claimed');
    const key = job.key;
    if (key === undefined || !this.shared) return;
    await this.backend.flush();
    const holder = this.life.refusedKeys.get(id);
    if (holder !== undefined) throw new JobBusyError(holder, key);
  }

  /**
   * The live job of a key (see `createJob({ key })`), or `undefined` when none is live. With a shared
   * backend: this process's live job of the key, else the one the store names, held by any process.
   *
   * @throws (rejects) InvalidArgumentError for a malformed key; BackendError when the store fails.
   *
   * @example
   * const answer = await registry.activeJob(chatId);
   * if (answer !== undefined) registry.tokens$(answer.id).subscribe(render);
   */
  async activeJob(key: string): Promise<JobSnapshot | undefined> {
    if (this.disposed) throw new RegistryDisposedError('activeJob');
    this.checkKey(key);
    const local = this.life.liveByKey.get(key);
    if (local !== undefined || !this.shared) return local?.snapshot();
    const id = await this.backend.jobOfKey!(key);
    const snap = id === undefined ? undefined : await this.findJob(id);
    return snap !== undefined && !isTerminal(snap.state) ? snap : undefined;
  }

  private checkKey(key: unknown): void {
    if (!(typeof key === 'string' && key.length > 0 && key.length <= 256))
      throw new InvalidArgumentError('a job key must be a string of 1 to 256 characters');
    if (this.shared && this.backend.jobOfKey === undefined)
      throw new InvalidArgumentError(
        `the ${this.backend.name} backend does not keep job keys across processes (it has no jobOfKey)`,
      );
  }

  /**
   * Throws `CapacityError` when one more job would not fit under `maxJobs` (the jobs held here and the
   * open Durable Streams made here that a shared backend keeps); a terminal job nobody reads makes room.
   */
  checkRoom(): void {
    if (this.disposed) throw new RegistryDisposedError('checkRoom');
    if (this.jobs.size + (this.backend.streams?.open ?? 0) >= this.settings.maxJobs) this.life.makeRoom();
  }

  /** Whether this process holds a job with this id. Lookups, like every method, throw `RegistryDisposedError` after `dispose()`. */
  hasJob(id: string): boolean {
    if (this.disposed) throw new RegistryDisposedError('hasJob');
    return this.jobs.has(id);
  }

  /** A snapshot of a job this process holds, or `undefined`. */
  getJob(id: string): JobSnapshot | undefined {
    if (this.disposed) throw new RegistryDisposedError('getJob');
    return this.jobs.get(id)?.snapshot();
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
   * How many live (not terminal) jobs this process holds for an owner, plus the open Durable Streams it
   * made that a shared backend keeps: the count a per-owner quota checks.
   */
  liveJobsOf(owner: string): number {
    // Durable Streams this process made that the shared backend keeps count too: no process holds them.
    return (this.life.liveByOwner.get(owner) ?? 0) + (this.backend.streams?.openBy(owner) ?? 0);
  }

  /** Executors waiting for a slot (`concurrency`) and running now, in this process. */
  executors(): {
    /** Jobs waiting for an executor slot. */
    waiting: number;
    /** Executors running now. */
    running: number;
  } {
    return { waiting: this.life.line.length, running: this.life.line.busy };
  }

  /**
   * Figures for metrics: jobs this process holds by state, its executors, running totals since it
   * started, and the shared backend's health. O(jobs held); meant for a scrape, not a hot path.
   */
  stats(): RegistryStats {
    if (this.disposed) throw new RegistryDisposedError('stats');
    const jobs: Record<JobState, number> = { queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0 };
    for (const job of this.jobs.values()) jobs[job.state]++;
    const stats: RegistryStats = { jobs, executors: this.executors(), totals: { ...this.life.totals } };
    const backend = this.backend.stats?.();
    if (backend !== undefined) stats.backend = backend;
    return stats;
  }

  /**
   * Lets the live jobs this process holds finish, for at most `within`, then cancels those still live
   * ("the server is shutting down"). For a graceful shutdown: stop taking new work first (the handlers'
   * `drain()`), then drain the registry, then `dispose()`. Resolves with how many finished and how many
   * were cancelled.
   */
  async drain(within: DurationInput): Promise<{
    /** Live jobs that finished within the time. */
    finished: number;
    /** Live jobs cancelled when the time ran out. */
    cancelled: number;
  }> {
    if (this.disposed) throw new RegistryDisposedError('drain');
    const ms = toMillis(within, 'drain');
    const live = [...this.jobs.values()].filter((job) => !isTerminal(job.state));
    await this.untilEnded(new Set(live.map((job) => job.id)), ms);
    if (this.disposed) return { finished: live.filter((job) => isTerminal(job.state)).length, cancelled: 0 };
    const left = live.filter((job) => !isTerminal(job.state) && this.jobs.get(job.id) === job);
    await Promise.all(left.map((job) => this.cancel(job.id, 'the server is shutting down')));
    return { finished: live.length - left.length, cancelled: left.length };
  }

  /** Resolves once every job of `ids` ended or went, `ms` passed on the clock, or the registry was disposed. */
  private untilEnded(ids: Set<string>, ms: number): Promise<void> {
    if (ids.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let done = false;
      let cancelTimer: (() => void) | undefined;
      let sub: Subscription | undefined;
      const finish = (): void => {
        if (done) return;
        done = true;
        cancelTimer?.();
        sub?.unsubscribe();
        resolve();
      };
      // events$ completes on dispose().
      sub = this.events$.subscribe({
        next: (e) => {
          if ((e.type === 'stateChanged' && isTerminal(e.to)) || e.type === 'removed') ids.delete(e.jobId);
          if (ids.size === 0) finish();
        },
        complete: finish,
      });
      // The process waits for its drain; `Infinity` waits for the jobs' ends alone.
      if (!done && Number.isFinite(ms)) cancelTimer = this.settings.clock.setTimer(finish, ms, true);
      if (done) sub.unsubscribe();
    });
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
    this.life.timers.stopClaim(job);
    this.life.transition(job, state, endReason(state, error));
  }

  /**
   * Appends a token and returns its seq. A `queued` job becomes `running`.
   *
   * @throws JobNotFoundError; JobClosedError when the job is terminal; LimitExceededError past `maxTokensPerJob`.
   */
  emit(id: string, token: T): number {
    const job = this.jobs.get(id);
    if (job === undefined) throw this.missing(id, 'emit');
    if (job.state !== 'running') {
      if (job.state !== 'queued') throw new JobClosedError(job.id, job.state);
      this.life.timers.stopClaim(job);
      this.life.transition(job, 'running', undefined);
    }
    return this.life.push(job, token);
  }

  /**
   * The producer side of a job as an RxJS Observer: `next` emits (dropped once the job is terminal),
   * `error(e)` fails the job with `e`'s message, `complete()` completes it.
   *
   * @throws JobNotFoundError
   */
  getTokenSender(id: string): Observer<T> {
    const job = this.require(id, 'getTokenSender');
    this.life.timers.stopClaim(job);
    return {
      next: (token: T) => this.life.produce(job, token),
      error: (e: unknown) => this.life.producerEnded(job, 'failed', e),
      complete: () => this.life.producerEnded(job, 'completed', undefined),
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
    if (job.hasProducer) throw new JobBusyError(id);
    job.hasProducer = true;
    this.life.timers.stopClaim(job);
    return this.life.attach(job, () => source);
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
   * Starts `executor(payload, { jobId, signal })` once per job (later calls join) and returns
   * `tokens$(id)`. The job is `running` from the moment the executor starts: at once, or, past
   * `concurrency`, when a slot frees (it waits in `queued` until then). A throw or rejection fails the job;
   * `signal` aborts on cancel or removal.
   *
   * @throws JobNotFoundError
   */
  executeAndStream(id: string, executor: Executor<T, P>): Observable<TokenEvent<T>> {
    if (typeof executor !== 'function')
      throw new InvalidArgumentError('executeAndStream needs an executor function');
    this.life.execute(this.require(id, 'executeAndStream'), executor);
    return this.tokens$(id);
  }

  /**
   * Holds a terminal job past its retention while a reader (an HTTP stream paused by backpressure) still
   * catches up on it, at most `retentionGrace` longer. Returns the release (idempotent). A job held by
   * another process is held in the shared backend (Redis pushes its keys' expiry out); an unknown id gives
   * a release that does nothing.
   */
  holdForReader(id: string): () => void {
    const job = this.jobs.get(id);
    if (job === undefined)
      return this.shared && isValidJobId(id) && this.backend.holdForReader !== undefined
        ? this.backend.holdForReader(id)
        : () => undefined;
    return holdJob(job);
  }

  /**
   * Holds a job this process created while its creator waits to learn its id (a handler's `flush()`
   * before it answers the POST). On release, a job that ended meanwhile is kept for `retention` from
   * then, not from its end: a create held up by the shared store (Redis paused, or slow) can end and
   * pass its retention before its creator is answered, and a client must not get a `202` for a job
   * already gone. The release is idempotent; an unknown id gives a release that does nothing.
   */
  holdForCreator(id: string): () => void {
    const job = this.jobs.get(id);
    if (job === undefined) return () => undefined;
    return holdJob(job, () => {
      if (isTerminal(job.state) && this.jobs.get(id) === job && !this.disposed) {
        const retention = this.settings.retentionMs;
        if (retention !== Infinity) this.life.timers.startRetention(job, retention);
      }
    });
  }

  /**
   * Removes a job (cancelling it first when it is not terminal) and returns its last snapshot; emits
   * `removed`. Unknown ids give `undefined`, so it is idempotent.
   */
  removeJob(id: string): JobSnapshot | undefined {
    if (this.disposed) throw new RegistryDisposedError('removeJob');
    const job = this.jobs.get(id);
    if (job === undefined) return undefined;
    this.life.remove(job);
    return job.snapshot();
  }

  /**
   * The job's status now, then each change; completes after a terminal status or on removal.
   * Errors with `JobNotFoundError` for an unknown id.
   */
  state$(id: string): Observable<JobStatus> {
    return new Observable<JobStatus>((sub) => {
      const job = this.locate(id, 'state$', sub);
      if (job === undefined) return;
      if (job === REMOTE) return this.backend.state$(id).subscribe(sub);
      if (isTerminal(job.state)) {
        sub.next(job.currentStatus());
        return sub.complete();
      }
      const status = (job.status ??= new BehaviorSubject(job.currentStatus()));
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
   * `JobNotFoundError`, `ReplayExpiredError` when `after` is older than the replay buffer keeps, or
   * `ResumeAheadError` when `after` is past what the job has (see "Resume semantics" in the README). A
   * resume at a terminal job's end (`after` = its token count) just ends.
   *
   * @throws InvalidArgumentError at once for an `after` that is not a whole number >= 0.
   */
  tokens$(id: string, options?: TokensOptions): Observable<TokenEvent<T>> {
    const after = resumePoint(options, 'tokens$');
    return new Observable<TokenEvent<T>>((sub) => {
      const job = this.locate(id, 'tokens$', sub);
      if (job === undefined) return;
      if (job === REMOTE)
        return (this.backend.tokens$(id, after) as Observable<TokenEvent<T>>).subscribe(sub);
      return this.life.read(job, sub, after);
    });
  }

  /**
   * Checks, before streaming, that a job exists and that `after` can be served (still kept, not ahead of
   * the job), so a transport can answer 404, 410 or 400 before it sends headers. Resolves with the job's
   * snapshot; a terminal job with `after` = its token count means the reader already saw its end.
   *
   * @throws (rejects) JobNotFoundError, ReplayExpiredError, ResumeAheadError, InvalidArgumentError.
   */
  async checkReadable(id: string, options?: TokensOptions): Promise<JobSnapshot> {
    const after = resumePoint(options, 'checkReadable');
    const job = this.locate(id, 'checkReadable');
    if (job !== REMOTE) {
      const first = job.firstKept();
      if (after !== undefined && after + 1 < first) throw new ReplayExpiredError(id, after, first);
      const ahead = aheadError(id, after, job.nextSeq, job.state);
      if (ahead !== undefined) throw ahead;
      return job.snapshot();
    }
    const snap = await this.backend.findJob(id);
    if (snap === undefined) throw this.notFound(id);
    if (after !== undefined) {
      const first = await this.backend.firstKept(id);
      if (first !== undefined && after + 1 < first) throw new ReplayExpiredError(id, after, first);
      // A live job held elsewhere may not have flushed what this reader saw: its reader waits instead.
      if (isTerminal(snap.state)) {
        const ahead = aheadError(id, after, snap.tokenCount, snap.state);
        if (ahead !== undefined) throw ahead;
      }
    }
    return snap;
  }

  /**
   * Cancels a job: `true` when it moved to `cancelled`, `false` when it was already terminal. With a shared
   * backend it reaches a job held by any process, and stops its producer there.
   *
   * @throws (rejects) JobNotFoundError for an unknown id.
   */
  async cancel(id: string, reason?: string): Promise<boolean> {
    if (reason !== undefined && typeof reason !== 'string')
      throw new InvalidArgumentError('cancel reason must be a string');
    const why = reason ?? 'job was cancelled';
    const job = this.locate(id, 'cancel');
    if (job !== REMOTE) {
      if (isTerminal(job.state)) return false;
      this.life.transition(job, 'cancelled', why);
      // With a shared backend the answer waits until the end is stored, and says what was stored: an
      // end another process wrote first wins there, and this cancel did not happen.
      if (job.ending !== undefined) await job.ending;
      return job.state === 'cancelled' && job.error === why;
    }
    const moved = await this.backend.cancel(id, why);
    if (moved === undefined) throw this.notFound(id);
    return moved;
  }

  /**
   * Like `getJob`, across every process when a shared backend is set. A job of this process that just
   * ended is answered once the backend stored its end (as its readers learn it): until then another
   * process's end may still win, and `getJob` shows this process's own.
   */
  async findJob(id: string): Promise<JobSnapshot | undefined> {
    if (this.disposed) throw new RegistryDisposedError('findJob');
    let job = this.jobs.get(id);
    if (job?.ending !== undefined) {
      await job.ending;
      if (this.disposed) throw new RegistryDisposedError('findJob');
      job = this.jobs.get(id);
    }
    if (job !== undefined) return job.snapshot();
    return this.shared && isValidJobId(id) ? this.backend.findJob(id) : undefined;
  }

  /** Snapshots of every job, across every process when a shared backend is set; oldest first. */
  async listJobs(): Promise<JobSnapshot[]> {
    if (this.disposed) throw new RegistryDisposedError('listJobs');
    // Ends being stored are listed once stored, as `findJob` answers them.
    const ending = [...this.jobs.values()].flatMap((job) => (job.ending !== undefined ? [job.ending] : []));
    if (ending.length > 0) {
      await Promise.all(ending);
      if (this.disposed) throw new RegistryDisposedError('listJobs');
    }
    const local = [...this.jobs.values()].map((job) => job.snapshot());
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
    const failure = this.life.endAll();
    this.disposed = true;
    this.life.clear();
    this.destroy$.next();
    this.destroy$.complete();
    // A backend's close() sends (or gives up on, after a bounded wait) the writes still pending.
    await this.backend.close();
    if (failure !== undefined) throw failure;
  }

  // ---- internals ----

  /**
   * The one local-or-remote lookup: the job held here, `REMOTE` when a shared backend may hold it, else
   * a JobNotFoundError (or RegistryDisposedError), errored into `sub` when given, thrown otherwise.
   */
  private locate(id: string, method: string): Job<T, P> | typeof REMOTE;
  private locate(id: string, method: string, sub: Subscriber<unknown>): Job<T, P> | typeof REMOTE | undefined;
  private locate(
    id: string,
    method: string,
    sub?: Subscriber<unknown>,
  ): Job<T, P> | typeof REMOTE | undefined {
    let error: Error;
    if (this.disposed) error = new RegistryDisposedError(method);
    else {
      const job = this.jobs.get(id);
      if (job !== undefined) return job;
      if (this.shared && isValidJobId(id)) return REMOTE;
      error = this.notFound(id);
    }
    if (sub === undefined) throw error;
    sub.error(error);
    return undefined;
  }

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

/** Holds a job against retention; the release (idempotent) lets go, then runs `released`. */
function holdJob(job: { holds: number }, released?: () => void): () => void {
  job.holds++;
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    job.holds--;
    released?.();
  };
}
