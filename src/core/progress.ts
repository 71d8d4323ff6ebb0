import type { DateTime } from 'luxon';
import { Subject, type Observable } from 'rxjs';
import type { Clock } from './clock.js';
import { utc } from './time.js';
import type { JobProgress } from './types.js';

/** What a progress feed reads of a job. */
export interface Progressing {
  readonly id: string;
  readonly nextSeq: number;
  /** Set while the job waits in the feed's next batch. */
  progressQueued: boolean;
}

/**
 * Token counts of live jobs, coalesced: at most one `progress` per job per interval, and only while
 * somebody watches (a token costs one flag check otherwise). One timer of the clock runs while counts wait.
 */
export class ProgressFeed<J extends Progressing> {
  private readonly subject = new Subject<JobProgress>();
  private queued: J[] = [];
  private cancelTimer: (() => void) | undefined;
  readonly progress$: Observable<JobProgress> = this.subject.asObservable();

  constructor(
    private readonly intervalMs: number,
    private readonly clock: Clock,
    /** Also told every count sent (a shared backend that publishes them to other processes). */
    private readonly forward?: (jobId: string, tokenCount: number) => void,
  ) {}

  /** Whether anybody watches: the registry then calls `moved` for each token. */
  get watched(): boolean {
    return this.forward !== undefined || this.subject.observed;
  }

  /** A job got tokens; its count goes out with the next batch. */
  moved(job: J): void {
    if (job.progressQueued) return;
    job.progressQueued = true;
    this.queued.push(job);
    if (this.cancelTimer === undefined)
      this.cancelTimer = this.clock.setTimer(() => this.flush(), this.intervalMs);
  }

  /** Sends a job's waiting count now (before its end is published, so the last count is exact). */
  settle(job: J): void {
    if (!job.progressQueued) return;
    job.progressQueued = false;
    this.send(job, utc(this.clock.now()));
  }

  close(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    for (const job of this.queued) job.progressQueued = false;
    this.queued = [];
    this.subject.complete();
  }

  private flush(): void {
    this.cancelTimer = undefined;
    const jobs = this.queued;
    this.queued = [];
    const at = utc(this.clock.now());
    for (const job of jobs) {
      if (!job.progressQueued) continue;
      job.progressQueued = false;
      this.send(job, at);
    }
  }

  private send(job: J, at: DateTime): void {
    if (this.subject.observed) this.subject.next({ jobId: job.id, tokenCount: job.nextSeq, at });
    this.forward?.(job.id, job.nextSeq);
  }
}
