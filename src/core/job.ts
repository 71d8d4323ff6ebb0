import type { BehaviorSubject, ObservableInput, Subscription } from 'rxjs';
import { TokenChannel } from './channel.js';
import type { Deadline } from './deadlines.js';
import { JobCancelledError, JobFailedError } from './errors.js';
import { utc } from './time.js';
import type { Timed } from './timers.js';
import type { JobSnapshot, JobState, JobStatus } from './types.js';

/** One job this process holds: its state, its token channel, its producer and its deadlines. */
export class Job<T, P> extends TokenChannel<T> implements Timed {
  state: JobState = 'queued';
  error: string | undefined = undefined;
  /** The error came from a producer and was not marked public: transports show `job failed`. */
  errorPrivate = false;
  updatedAt: number;
  /** When the first token came (ms since the epoch), 0 until then. */
  firstTokenAt = 0;
  owner: string | undefined = undefined;
  /** The key it was created under (at most one live job per key). */
  key: string | undefined = undefined;
  /** Made on the first `state$`, dropped when nobody watches. */
  status: BehaviorSubject<JobStatus> | undefined = undefined;
  payload: P | undefined = undefined;
  hasPayload = false;
  /** An executor or token source was attached (it may still wait for a slot). */
  hasProducer = false;
  /** The executor waiting in line for a slot (`concurrency`). */
  queuedStart: (() => ObservableInput<T>) | undefined = undefined;
  /** The job's executor holds one of the registry's slots. */
  holdsSlot = false;
  producer: Subscription | undefined = undefined;
  abort: AbortController | undefined = undefined;
  claimDeadline: Deadline<Timed> | undefined = undefined;
  retentionDeadline: Deadline<Timed> | undefined = undefined;
  idleDeadline: Deadline<Timed> | undefined = undefined;
  /** Readers that paused (backpressure) and will resume: retention waits for them, up to its grace. */
  holds = 0;
  /** Set while a shared backend stores this job's end; its token channel closes when it settles. */
  ending: Promise<void> | undefined = undefined;
  /** Waits in the progress feed's next batch. */
  progressQueued = false;
  /** `dispose()` ends readers by completing them, whatever the state. */
  endQuietly = false;

  constructor(
    id: string,
    limit: number,
    readonly createdAt: number,
  ) {
    super(id, limit);
    this.updatedAt = createdAt;
  }

  currentStatus(): JobStatus {
    const status: JobStatus = { state: this.state, at: utc(this.updatedAt) };
    if (this.error !== undefined) status.error = this.error;
    if (this.errorPrivate) status.errorPrivate = true;
    return status;
  }

  snapshot(): JobSnapshot {
    const snap: JobSnapshot = {
      id: this.id,
      state: this.state,
      createdAt: utc(this.createdAt),
      updatedAt: utc(this.updatedAt),
      tokenCount: this.nextSeq,
    };
    if (this.error !== undefined) snap.error = this.error;
    if (this.errorPrivate) snap.errorPrivate = true;
    if (this.owner !== undefined) snap.owner = this.owner;
    if (this.key !== undefined) snap.key = this.key;
    if (this.firstTokenAt !== 0) snap.firstTokenAt = utc(this.firstTokenAt);
    return snap;
  }

  /** The error a reader of this (terminal) job ends with; `undefined` for completed. */
  protected override endError(): Error | undefined {
    if (this.endQuietly) return undefined;
    if (this.state === 'failed')
      return new JobFailedError(this.id, this.error ?? 'job failed', !this.errorPrivate);
    if (this.state === 'cancelled') return new JobCancelledError(this.id, this.error ?? 'job was cancelled');
    return undefined;
  }

  /** The error an executor's abort signal carries when the job ends under it. */
  abortReason(): Error {
    return this.endError() ?? new JobCancelledError(this.id, this.error ?? 'job ended');
  }
}
