import { Observable, Subject, from } from 'rxjs';
import type { ObservableInput, Subscriber, Subscription } from 'rxjs';
import type { BackendHost, HeldJob, RegistryBackend } from './backend.js';
import { CapacityError, LimitExceededError, ResumeAheadError, isPublicError, messageOf } from './errors.js';
import type { ChannelReader, ReaderHost, TokenChannel } from './channel.js';
import { Job } from './job.js';
import { ExecutorLine } from './line.js';
import { ProgressFeed } from './progress.js';
import type { Settings } from './options.js';
import { Serial } from './serial.js';
import { isTerminal } from './states.js';
import { utc } from './time.js';
import { JobTimers } from './timers.js';
import type { Executor, JobState, RegistryEvent, TokenEvent } from './types.js';

/** How often a terminal job past its retention checks whether its held readers are done. */
const HOLD_RECHECK_MS = 1000;

/** Why a live job of a key ends when a newer job of its key replaces it (`keyConflict: 'replace'`). */
export const REPLACED_BY_KEY = 'replaced by a newer job of its key';

/** The registry's event stream: publishes in order, also when a subscriber acts from its callback. */
export class EventQueue extends Serial<RegistryEvent> {
  readonly subject = new Subject<RegistryEvent>();
  publish(ev: RegistryEvent): void {
    this.dispatch(ev);
  }
  protected handle(ev: RegistryEvent): void {
    this.subject.next(ev);
  }
}

/**
 * The jobs this process holds and their state machine: transitions and what an end sets off (deadlines,
 * producer, executor slot, owner count, token channel), producers and the executor line, retention and
 * capacity. `JobRegistry` is the public face over it; this is internal.
 */
export class Lifecycle<T, P> implements ReaderHost<T> {
  readonly jobs = new Map<string, Job<T, P>>();
  readonly events = new EventQueue();
  readonly timers: JobTimers<Job<T, P>>;
  readonly line: ExecutorLine<Job<T, P>>;
  readonly liveByOwner = new Map<string, number>();
  /** The live job of each key. */
  readonly liveByKey = new Map<string, Job<T, P>>();
  /** Jobs created here whose key the shared store gave to another live job: that job's id. */
  readonly refusedKeys = new Map<string, string>();
  readonly progress: ProgressFeed<Job<T, P>>;
  /** Running totals since the start, for metrics. */
  readonly totals = { created: 0, tokens: 0, completed: 0, failed: 0, cancelled: 0 };
  readonly shared: boolean;
  disposed = false;
  private startingQueued = false;

  constructor(
    readonly settings: Settings,
    readonly backend: RegistryBackend,
  ) {
    this.shared = backend.shared;
    this.line = new ExecutorLine(settings.concurrency);
    this.progress = new ProgressFeed(
      settings.progressMs,
      settings.clock,
      backend.wantsProgress === true && backend.progressed !== undefined
        ? (id, count) => backend.progressed!(id, count)
        : undefined,
    );
    this.timers = new JobTimers<Job<T, P>>(
      {
        claimExpired: (job) => {
          if (this.jobs.get(job.id) === job && job.state === 'queued')
            this.transition(job, 'cancelled', 'no reader claimed the job before its claimTimeout');
        },
        retentionExpired: (job) => this.retentionExpired(job),
        idleExpired: (job) => {
          if (this.jobs.get(job.id) === job && !isTerminal(job.state) && job.readers.length === 0)
            this.transition(job, 'cancelled', 'no reader came back before its abandonTimeout');
        },
      },
      settings.clock,
    );
  }

  /** Starts a job's executor once: at once, or when a slot frees (`concurrency`); later calls join. */
  execute(job: Job<T, P>, executor: Executor<T, P>): void {
    if (job.hasProducer || isTerminal(job.state)) return;
    job.hasProducer = true;
    this.timers.stopClaim(job);
    const start = (): ObservableInput<T> => {
      const payload = job.payload;
      job.payload = undefined;
      job.hasPayload = false;
      const abort = new AbortController();
      job.abort = abort;
      return executor(payload, { jobId: job.id, signal: abort.signal });
    };
    if (this.line.take()) this.startExecutor(job, start);
    else {
      job.queuedStart = start;
      this.line.wait(job);
    }
  }

  /**
   * Ends every job for `dispose()`: live ones as cancelled, every reader completed now, without waiting
   * for a backend to store the end. Returns the first error a subscriber threw (the others still end).
   */
  endAll(): unknown {
    this.line.clear();
    let failure: unknown;
    for (const job of this.jobs.values()) {
      try {
        job.endQuietly = true;
        if (!isTerminal(job.state)) this.transition(job, 'cancelled', 'registry disposed');
        if (job.ending !== undefined) {
          job.ending = undefined;
          job.close();
        }
      } catch (e) {
        failure ??= e;
      }
    }
    return failure;
  }

  /** Forgets every job, timer and count, and completes `events$`. */
  clear(): void {
    this.disposed = true;
    this.timers.clear();
    this.jobs.clear();
    this.liveByOwner.clear();
    this.liveByKey.clear();
    this.refusedKeys.clear();
    this.progress.close();
    this.events.subject.complete();
  }

  /** Removes a job (cancelled first when live) and publishes `removed`. */
  remove(job: Job<T, P>): void {
    if (!isTerminal(job.state)) this.transition(job, 'cancelled', 'job was removed');
    this.timers.stopAll(job);
    job.payload = undefined;
    this.jobs.delete(job.id);
    if (job.key !== undefined) this.refusedKeys.delete(job.id);
    if (this.shared) this.backend.jobRemoved(job.id, job.key);
    if (this.events.subject.observed)
      this.events.publish({ type: 'removed', jobId: job.id, at: utc(this.settings.clock.now()) });
  }

  host(): BackendHost {
    const adoptEnd: BackendHost['adoptEnd'] = (jobId, state, error, errorPrivate) => {
      const job = this.jobs.get(jobId);
      if (job === undefined || job.state === state) return;
      const reason = endReason(state, error);
      if (!isTerminal(job.state)) this.transition(job, state, reason, errorPrivate === true, false);
      else {
        // Readers here already saw this process's end; the record now says what every process says.
        job.state = state;
        job.error = reason;
        job.errorPrivate = errorPrivate === true;
      }
    };
    return {
      replayLimit: this.settings.replayLimit,
      retentionMs: this.settings.retentionMs,
      graceMs: this.settings.graceMs,
      keyConflict: this.settings.keyConflict,
      holds: (jobId) => this.jobs.has(jobId),
      liveJobs: () => {
        const ids: string[] = [];
        for (const job of this.jobs.values()) if (!isTerminal(job.state)) ids.push(job.id);
        return ids;
      },
      liveKeys: () => [...this.liveByKey.keys()],
      describe: (jobId) => {
        const job = this.jobs.get(jobId);
        if (job === undefined) return undefined;
        const held: HeldJob = { state: job.state, createdAt: job.createdAt, tokenCount: job.nextSeq };
        if (job.error !== undefined) held.error = job.error;
        if (job.errorPrivate) held.errorPrivate = true;
        if (job.owner !== undefined) held.owner = job.owner;
        if (job.key !== undefined) held.key = job.key;
        return held;
      },
      adoptEnd,
      keyRefused: (jobId, holder, error) => {
        if (!this.jobs.has(jobId)) return;
        this.refusedKeys.set(jobId, holder);
        adoptEnd(jobId, 'cancelled', error);
      },
      end: (jobId, state, error) => {
        const job = this.jobs.get(jobId);
        if (job === undefined || isTerminal(job.state)) return false;
        this.transition(job, state, error);
        return true;
      },
    };
  }

  // When full, the oldest terminal job no reader holds makes room; otherwise the registry is at capacity.
  makeRoom(): void {
    for (const job of this.jobs.values()) {
      if (isTerminal(job.state) && job.ending === undefined && job.holds === 0 && job.readers.length === 0) {
        this.remove(job);
        return;
      }
    }
    throw new CapacityError('maxJobs', this.settings.maxJobs, 'every job held is live or being read');
  }

  // A token from a producer (executor, token source or sender). A write the backend refuses cannot be
  // thrown back into the producer's Observable (it would surface as an uncaught error and leave the job
  // running with tokens missing): the job fails instead, with the backend's reason.
  produce(job: Job<T, P>, token: T): void {
    if (isTerminal(job.state) || this.disposed) return;
    if (job.state === 'queued') this.transition(job, 'running', undefined);
    try {
      this.push(job, token);
    } catch (e) {
      if (!isTerminal(job.state)) this.transition(job, 'failed', messageOf(e));
    }
  }

  producerEnded(job: Job<T, P>, state: 'completed' | 'failed', e: unknown): void {
    if (isTerminal(job.state) || this.disposed) return;
    if (state === 'completed') this.transition(job, 'completed', undefined);
    else {
      const hidden = !isPublicError(e);
      // Clients see `job failed`; the operator sees why.
      if (hidden) this.settings.logger.warn(`job-registry: job '${job.id}' failed: ${describeError(e)}`);
      this.transition(job, 'failed', messageOf(e), hidden);
    }
  }

  push(job: Job<T, P>, token: T): number {
    if (job.nextSeq >= this.settings.maxTokens) {
      const error = new LimitExceededError(job.id, 'maxTokensPerJob', this.settings.maxTokens);
      if (!isTerminal(job.state)) this.transition(job, 'failed', error.message);
      throw error;
    }
    // The backend write goes first: when it refuses (BackendError), nothing has changed here.
    if (this.shared) this.backend.tokenAppended(job.id, job.nextSeq, token);
    const seq = job.append(token);
    if (seq === 0) job.firstTokenAt = this.settings.clock.now();
    this.totals.tokens++;
    if (this.progress.watched) this.progress.moved(job);
    return seq;
  }

  /** Attaches `sub` to the job's tokens; returns the reader, which is the subscription's teardown. */
  read(
    job: Job<T, P>,
    sub: Subscriber<TokenEvent<T>>,
    after: number | undefined,
  ): ChannelReader<T> | undefined {
    this.timers.stopClaim(job);
    const ahead = aheadError(job.id, after, job.nextSeq, job.state);
    if (ahead !== undefined) {
      sub.error(ahead);
      return undefined;
    }
    const reader = job.read(sub, after, this);
    if (reader !== undefined) this.timers.stopIdle(job);
    return reader;
  }

  /** A reader left: the job's last reader gone starts its abandon timer (see `abandonMs`). */
  readerLeft(channel: TokenChannel<T>, reader: ChannelReader<T>): void {
    const job = channel as Job<T, P>;
    if (
      job.detach(reader) &&
      this.settings.abandonMs !== Infinity &&
      !isTerminal(job.state) &&
      !this.disposed
    )
      this.timers.startIdle(job, this.settings.abandonMs);
  }

  startExecutor(job: Job<T, P>, start: () => ObservableInput<T>): void {
    job.holdsSlot = true;
    if (job.state === 'queued') this.transition(job, 'running', undefined);
    if (isTerminal(job.state)) return;
    this.attach(job, start);
  }

  // Starts the executors waiting in line while slots are free. A loop, not recursion: an executor that
  // ends at once frees its slot for the next one here.
  startWaiting(): void {
    if (this.startingQueued || this.disposed) return;
    this.startingQueued = true;
    try {
      for (let job = this.line.next(); job !== undefined; job = this.line.next()) {
        const start = job.queuedStart!;
        job.queuedStart = undefined;
        this.startExecutor(job, start);
      }
    } finally {
      this.startingQueued = false;
    }
  }

  // The next job in line starts after the freeing job's end is published (see transition), so events$
  // shows the end before the start it made room for.
  releaseSlot(job: Job<T, P>): void {
    if (!job.holdsSlot) return;
    job.holdsSlot = false;
    this.line.release();
  }

  attach(job: Job<T, P>, start: () => ObservableInput<T>): Subscription {
    let done = false;
    let subscription: Subscription | undefined;
    const finish = (state: 'completed' | 'failed', e: unknown): void => {
      done = true;
      job.producer = undefined;
      job.abort = undefined;
      this.producerEnded(job, state, e);
      this.releaseSlot(job);
      this.startWaiting();
    };
    try {
      subscription = from(start()).subscribe({
        next: (token) => this.produce(job, token),
        error: (e: unknown) => finish('failed', e),
        complete: () => finish('completed', undefined),
      });
    } catch (e) {
      // The executor threw, or returned something that is not an ObservableInput.
      finish('failed', e);
      return new Observable().subscribe();
    }
    if (done || isTerminal(job.state)) subscription.unsubscribe();
    else job.producer = subscription;
    return subscription;
  }

  transition(
    job: Job<T, P>,
    to: JobState,
    error: string | undefined,
    errorPrivate = false,
    write = true,
  ): void {
    const from = job.state;
    const at = this.settings.clock.now();
    const stored =
      this.shared && write
        ? (this.backend.stateChanged(job.id, from, to, error, at, errorPrivate) as Promise<void> | undefined)
        : undefined;
    job.state = to;
    job.error = error;
    job.errorPrivate = errorPrivate && error !== undefined;
    job.updatedAt = at;
    const terminal = isTerminal(to);
    if (terminal) {
      this.progress.settle(job);
      this.settle(job, isTerminal(from), stored);
    }
    const status = job.status;
    if (status !== undefined) {
      status.next(job.currentStatus());
      if (terminal) {
        job.status = undefined;
        status.complete();
      }
    }
    if (this.events.subject.observed) {
      const ev: RegistryEvent = { type: 'stateChanged', jobId: job.id, from, to, at: utc(at) };
      if (error !== undefined) ev.error = error;
      if (job.errorPrivate) ev.errorPrivate = true;
      this.events.publish(ev);
    }
    if (terminal) this.startWaiting();
  }

  // A job reached its end: its deadlines, producer, slot and owner count go; its token channel closes
  // once `stored` (a shared backend has the end, or told this process the end it already had) settles.
  settle(job: Job<T, P>, wasTerminal: boolean, stored?: Promise<void>): void {
    this.timers.stopAll(job);
    if (this.settings.retentionMs !== Infinity && !this.disposed)
      this.timers.startRetention(job, this.settings.retentionMs, job.updatedAt);
    if (!wasTerminal) this.totals[job.state as 'completed' | 'failed' | 'cancelled']++;
    if (!wasTerminal && job.owner !== undefined) {
      const left = (this.liveByOwner.get(job.owner) ?? 1) - 1;
      if (left <= 0) this.liveByOwner.delete(job.owner);
      else this.liveByOwner.set(job.owner, left);
    }
    if (job.key !== undefined && this.liveByKey.get(job.key) === job) this.liveByKey.delete(job.key);
    if (job.queuedStart !== undefined) {
      job.queuedStart = undefined;
      this.line.leave(job);
    }
    const producer = job.producer;
    const abort = job.abort;
    job.producer = undefined;
    job.abort = undefined;
    job.payload = undefined;
    if (producer !== undefined) producer.unsubscribe();
    if (abort !== undefined && !abort.signal.aborted) abort.abort(job.abortReason());
    this.releaseSlot(job);
    if (stored === undefined) job.close();
    else {
      const ending = stored.then(() => {
        if (job.ending === ending) job.ending = undefined;
        job.close();
      });
      job.ending = ending;
    }
  }

  retentionExpired(job: Job<T, P>): void {
    if (this.jobs.get(job.id) !== job || !isTerminal(job.state)) return;
    const busy = job.holds > 0 || job.readers.length > 0 || job.ending !== undefined;
    const graceEnds = job.updatedAt + this.settings.retentionMs + this.settings.graceMs;
    if (this.settings.clock.now() >= graceEnds) return this.remove(job);
    if (busy) return this.timers.startRetention(job, HOLD_RECHECK_MS);
    // A paused reader on another process may hold it too.
    const isHeld = this.backend.isHeld;
    if (!this.shared || isHeld === undefined) return this.remove(job);
    void isHeld.call(this.backend, job.id).then((held) => {
      if (this.disposed || this.jobs.get(job.id) !== job || job.retentionDeadline !== undefined) return;
      if (held) this.timers.startRetention(job, HOLD_RECHECK_MS);
      else this.remove(job);
    });
  }
}

/**
 * A resume point past what the job has: ahead of a live job's last seq, or past a completed job's end
 * event (whose id is its token count; resuming at that id just ends). Past the end of a job that failed
 * or was cancelled is not an error: the reader gets that end (it may have seen tokens an owner that died
 * never stored).
 */
export function aheadError(
  id: string,
  after: number | undefined,
  count: number,
  state: JobState,
): ResumeAheadError | undefined {
  if (after === undefined || after < count) return undefined;
  if (state === 'failed' || state === 'cancelled') return undefined;
  if (state === 'completed' && after === count) return undefined;
  return new ResumeAheadError(id, after, count, isTerminal(state));
}

export function endReason(state: JobState, error: string | undefined): string | undefined {
  if (state === 'failed') return error ?? 'job failed';
  if (state === 'cancelled') return error ?? 'job was cancelled';
  return undefined;
}

/** An error's message and, when there is one, its stack, for the logger. */
function describeError(e: unknown): string {
  return e instanceof Error && e.stack !== undefined ? e.stack : messageOf(e);
}
