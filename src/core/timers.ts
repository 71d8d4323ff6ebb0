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

type Field = 'claimDeadline' | 'retentionDeadline' | 'idleDeadline';

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

  startClaim(job: J, ms: number): void {
    this.start(this.claim, job, 'claimDeadline', ms);
  }
  stopClaim(job: J): void {
    this.stop(this.claim, job, 'claimDeadline');
  }
  startRetention(job: J, ms: number): void {
    this.start(this.retention, job, 'retentionDeadline', ms);
  }
  startIdle(job: J, ms: number): void {
    this.start(this.idle, job, 'idleDeadline', ms);
  }
  stopIdle(job: J): void {
    this.stop(this.idle, job, 'idleDeadline');
  }

  /** Stops every deadline of one job. */
  stopAll(job: J): void {
    this.stop(this.claim, job, 'claimDeadline');
    this.stop(this.retention, job, 'retentionDeadline');
    this.stop(this.idle, job, 'idleDeadline');
  }

  /** Stops every deadline of every job, and the timers. */
  clear(): void {
    this.claim.clear();
    this.retention.clear();
    this.idle.clear();
  }

  private start(set: Deadlines<Timed>, job: J, field: Field, ms: number): void {
    const old = job[field];
    if (old !== undefined) set.cancel(old);
    job[field] = ms === Infinity ? undefined : set.schedule(job, ms);
  }

  private stop(set: Deadlines<Timed>, job: J, field: Field): void {
    const old = job[field];
    if (old === undefined) return;
    set.cancel(old);
    job[field] = undefined;
  }
}
