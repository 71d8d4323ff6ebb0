import { Subject, type Observable } from 'rxjs';
import { utc } from '../core/time.js';
import type { JobProgress } from '../core/types.js';

/**
 * Token counts shared between processes: the counts of live jobs held here go out on their shard's event
 * stream at most once per interval (the latest count per job), and counts other processes published come
 * back as `progress$`. One unref'd timer runs while counts wait.
 */
export class SharedProgress {
  private readonly out = new Subject<JobProgress>();
  private readonly due = new Map<string, number>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  readonly progress$: Observable<JobProgress> = this.out.asObservable();

  constructor(
    private readonly intervalMs: number,
    /** Writes one count (the job must still be live here). */
    private readonly write: (jobId: string, tokenCount: number, at: number) => void,
  ) {}

  /** A live job held here reached `tokenCount`. */
  progressed(jobId: string, tokenCount: number): void {
    this.due.set(jobId, tokenCount);
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const now = Date.now();
      for (const [id, count] of this.due) this.write(id, count, now);
      this.due.clear();
    }, this.intervalMs);
    this.timer.unref?.();
  }

  /** A count another process published. */
  received(jobId: string, tokenCount: number, at: number): void {
    if (this.out.observed) this.out.next({ jobId, tokenCount, at: utc(at) });
  }

  close(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.due.clear();
    this.out.complete();
  }
}
