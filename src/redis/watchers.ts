import { JobNotFoundError } from '../core/errors.js';

/**
 * The readers (token and status streams) this process has open on jobs held elsewhere, by job, so they
 * end at once when their job's data vanishes (removed, expired, lost with Redis's data) instead of
 * waiting for an end that cannot come.
 */
export class Watchers {
  private readonly byJob = new Map<string, Set<(error: Error) => void>>();

  /** Registers a reader; returns its unregistration. */
  watch(jobId: string, onVanish: (error: Error) => void): () => void {
    let set = this.byJob.get(jobId);
    if (set === undefined) this.byJob.set(jobId, (set = new Set()));
    set.add(onVanish);
    return () => {
      const now = this.byJob.get(jobId);
      if (now !== undefined && now.delete(onVanish) && now.size === 0) this.byJob.delete(jobId);
    };
  }

  /** Jobs with a reader here. */
  jobs(): string[] {
    return [...this.byJob.keys()];
  }

  /**
   * Ends every reader of a job whose data disappeared with `JobNotFoundError`: the job's end is unknown
   * here, so no end is claimed (an HTTP stream closes without a terminal event; the client's next
   * request learns what is left: the end its owner wrote back, or 404).
   */
  vanish(jobId: string): void {
    const set = this.byJob.get(jobId);
    if (set === undefined) return;
    this.byJob.delete(jobId);
    const error = new JobNotFoundError(
      jobId,
      'it vanished from Redis while it was read (removed, expired, or its data was lost)',
    );
    for (const onVanish of set) onVanish(error);
  }
}

/** A bounded memory of events already passed on, to drop one resent after a dropped connection. */
export class Seen {
  private readonly marks = new Set<string>();

  constructor(private readonly capacity: number) {}

  /** True the first time a mark is seen. */
  first(mark: string): boolean {
    if (this.marks.has(mark)) return false;
    this.marks.add(mark);
    if (this.marks.size > this.capacity) this.marks.delete(this.marks.values().next().value!);
    return true;
  }
}
