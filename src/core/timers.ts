import type { Clock } from './clock.js';
import { Deadlines, type Deadline } from './deadlines.js';

/** The three lifecycle deadlines of a job, one field each. */
export interface Timed {
  /** Cancels a queued job nobody claimed (`claimTimeout`). */
  claimDeadline: Deadline<Timed> | undefined;
  /** Removes a terminal job (`retention`), or checks again while a reader catches up. */
  retentionDeadline: Deadline<Timed> | undefined;
  /** Cancels a live job whose readers all left (`abandonTimeout`). */
  idleDeadline: Deadline<Timed> | undefined;
}

/** What happens when a deadline passes. */
export interface TimerHandlers<J extends Timed> {
  claimExpired(job: J): void;
  retentionExpired(job: J): void;
  idleExpired(job: J): void;
}

/** One timer set per kind of deadline, each served by one timer of the clock for every job. */
export class JobTimers<J extends Timed> {
  private readonly claim: Deadlines<Timed>;
  private readonly retention: Deadlines<Timed>;
  private readonly idle: Deadlines<Timed>;

  constructor(handlers: TimerHandlers<J>, clock: Clock) {
    this.claim = new Deadlines<Timed>((job) => {
      job.claimDeadline = undefined;
      handlers.claimExpired(job as J);
    }, clock);
    this.retention = new Deadlines<Timed>((job) => {
      job.retentionDeadline = undefined;
      handlers.retentionExpired(job as J);
    }, clock);
    this.idle = new Deadlines<Timed>((job) => {
      job.idleDeadline = undefined;
      handlers.idleExpired(job as J);
    }, clock);
  }

  // One method per field, each reading and writing its field by name: a field chosen at run time
  // (job[field]) makes every access a megamorphic keyed lookup, and these run for every job.
  startClaim(job: J, ms: number): void {
    const old = job.claimDeadline;
    if (old !== undefined) this.claim.cancel(old);
    job.claimDeadline = ms === Infinity ? undefined : this.claim.schedule(job, ms);
  }
  stopClaim(job: J): void {
    const d = job.claimDeadline;
    if (d === undefined) return;
    this.claim.cancel(d);
    job.claimDeadline = undefined;
  }
  /** `from`: when the retention starts, if the caller just read the clock (a job's end). */
  startRetention(job: J, ms: number, from?: number): void {
    const old = job.retentionDeadline;
    if (old !== undefined) this.retention.cancel(old);
    job.retentionDeadline = ms === Infinity ? undefined : this.retention.schedule(job, ms, from);
  }
  stopRetention(job: J): void {
    const d = job.retentionDeadline;
    if (d === undefined) return;
    this.retention.cancel(d);
    job.retentionDeadline = undefined;
  }
  startIdle(job: J, ms: number): void {
    const old = job.idleDeadline;
    if (old !== undefined) this.idle.cancel(old);
    job.idleDeadline = ms === Infinity ? undefined : this.idle.schedule(job, ms);
  }
  stopIdle(job: J): void {
    const d = job.idleDeadline;
    if (d === undefined) return;
    this.idle.cancel(d);
    job.idleDeadline = undefined;
  }

  /** Stops every deadline of one job. */
  stopAll(job: J): void {
    this.stopClaim(job);
    this.stopRetention(job);
    this.stopIdle(job);
  }

  /** Stops every deadline of every job, and the timers. */
  clear(): void {
    this.claim.clear();
    this.retention.clear();
    this.idle.clear();
  }
}
