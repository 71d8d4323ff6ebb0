import type { BehaviorSubject, ObservableInput, Subscription } from 'rxjs';
import { TokenChannel } from './channel.js';
import type { Deadline } from './deadlines.js';
import { JobCancelledError, JobFailedError } from './errors.js';
import { utc } from './time.js';
import type { Timed } from './timers.js';
import type { JobSnapshot, JobState, JobStatus } from './types.js';

/** A job's fields most jobs never set, kept apart so an idle job stays small. */
class JobExtras<T> {
  error: string | undefined = undefined;
  key: string | undefined = undefined;
  status: BehaviorSubject<JobStatus> | undefined = undefined;
  queuedStart: (() => ObservableInput<T>) | undefined = undefined;
  claimDeadline: Deadline<Timed> | undefined = undefined;
  retentionDeadline: Deadline<Timed> | undefined = undefined;
  idleDeadline: Deadline<Timed> | undefined = undefined;
  holds = 0;
  ending: Promise<void> | undefined = undefined;
}

// The job's yes/no fields, as bits of one number.
const ERROR_PRIVATE = 1;
const HAS_PAYLOAD = 2;
const HAS_PRODUCER = 4;
const HOLDS_SLOT = 8;
const PROGRESS_QUEUED = 16;
const END_QUIETLY = 32;

/**
 * One job this process holds: its state, its token channel, its producer and its deadlines. Its yes/no
 * fields share one number, and the ones most jobs never set live in a `JobExtras` made on first write:
 * a held idle job is what the registry's memory is made of.
 */
export class Job<T, P> extends TokenChannel<T> implements Timed {
  state: JobState = 'queued';
  /** When the job last changed (ms since the epoch); `undefined` while that is its creation. */
  private changedAt: number | undefined = undefined;
  /** When the first token came (ms since the epoch), 0 until then. */
  firstTokenAt = 0;
  owner: string | undefined = undefined;
  payload: P | undefined = undefined;
  producer: Subscription | undefined = undefined;
  abort: AbortController | undefined = undefined;
  private flags = 0;
  private extras: JobExtras<T> | undefined = undefined;

  constructor(
    id: string,
    limit: number,
    readonly createdAt: number,
  ) {
    super(id, limit);
  }

  get updatedAt(): number {
    return this.changedAt ?? this.createdAt;
  }
  set updatedAt(at: number) {
    this.changedAt = at;
  }

  private flag(bit: number): boolean {
    return (this.flags & bit) !== 0;
  }
  private setFlag(bit: number, on: boolean): void {
    this.flags = on ? this.flags | bit : this.flags & ~bit;
  }
  private get more(): JobExtras<T> {
    return (this.extras ??= new JobExtras<T>());
  }

  /** The error came from a producer and was not marked public: transports show `job failed`. */
  get errorPrivate(): boolean {
    return this.flag(ERROR_PRIVATE);
  }
  set errorPrivate(on: boolean) {
    this.setFlag(ERROR_PRIVATE, on);
  }
  get hasPayload(): boolean {
    return this.flag(HAS_PAYLOAD);
  }
  set hasPayload(on: boolean) {
    this.setFlag(HAS_PAYLOAD, on);
  }
  /** An executor or token source was attached (it may still wait for a slot). */
  get hasProducer(): boolean {
    return this.flag(HAS_PRODUCER);
  }
  set hasProducer(on: boolean) {
    this.setFlag(HAS_PRODUCER, on);
  }
  /** The job's executor holds one of the registry's slots. */
  get holdsSlot(): boolean {
    return this.flag(HOLDS_SLOT);
  }
  set holdsSlot(on: boolean) {
    this.setFlag(HOLDS_SLOT, on);
  }
  /** Waits in the progress feed's next batch. */
  get progressQueued(): boolean {
    return this.flag(PROGRESS_QUEUED);
  }
  set progressQueued(on: boolean) {
    this.setFlag(PROGRESS_QUEUED, on);
  }
  /** `dispose()` ends readers by completing them, whatever the state. */
  get endQuietly(): boolean {
    return this.flag(END_QUIETLY);
  }
  set endQuietly(on: boolean) {
    this.setFlag(END_QUIETLY, on);
  }

  /** Why it failed or was cancelled. */
  get error(): string | undefined {
    return this.extras?.error;
  }
  set error(error: string | undefined) {
    if (error !== undefined || this.extras !== undefined) this.more.error = error;
  }
  /** The key it was created under (at most one live job per key). */
  get key(): string | undefined {
    return this.extras?.key;
  }
  set key(key: string | undefined) {
    if (key !== undefined || this.extras !== undefined) this.more.key = key;
  }
  /** Made on the first `state$`, dropped when nobody watches. */
  get status(): BehaviorSubject<JobStatus> | undefined {
    return this.extras?.status;
  }
  set status(status: BehaviorSubject<JobStatus> | undefined) {
    if (status !== undefined || this.extras !== undefined) this.more.status = status;
  }
  /** The executor waiting in line for a slot (`concurrency`). */
  get queuedStart(): (() => ObservableInput<T>) | undefined {
    return this.extras?.queuedStart;
  }
  set queuedStart(start: (() => ObservableInput<T>) | undefined) {
    if (start !== undefined || this.extras !== undefined) this.more.queuedStart = start;
  }
  get claimDeadline(): Deadline<Timed> | undefined {
    return this.extras?.claimDeadline;
  }
  set claimDeadline(d: Deadline<Timed> | undefined) {
    if (d !== undefined || this.extras !== undefined) this.more.claimDeadline = d;
  }
  get retentionDeadline(): Deadline<Timed> | undefined {
    return this.extras?.retentionDeadline;
  }
  set retentionDeadline(d: Deadline<Timed> | undefined) {
    if (d !== undefined || this.extras !== undefined) this.more.retentionDeadline = d;
  }
  get idleDeadline(): Deadline<Timed> | undefined {
    return this.extras?.idleDeadline;
  }
  set idleDeadline(d: Deadline<Timed> | undefined) {
    if (d !== undefined || this.extras !== undefined) this.more.idleDeadline = d;
  }
  /** Readers that paused (backpressure) and will resume: retention waits for them, up to its grace. */
  get holds(): number {
    return this.extras?.holds ?? 0;
  }
  set holds(n: number) {
    if (n !== 0 || this.extras !== undefined) this.more.holds = n;
  }
  /** Set while a shared backend stores this job's end; its token channel closes when it settles. */
  get ending(): Promise<void> | undefined {
    return this.extras?.ending;
  }
  set ending(p: Promise<void> | undefined) {
    if (p !== undefined || this.extras !== undefined) this.more.ending = p;
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
