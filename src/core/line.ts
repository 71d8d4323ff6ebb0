/**
 * The line of jobs waiting for an executor slot (`concurrency`): first in, first out. A job leaves the
 * line when it gets a slot, or when it ends while waiting (cancelled, removed).
 */
export class ExecutorLine<J> {
  private running = 0;
  private readonly waiting = new Set<J>();

  constructor(readonly slots: number) {}

  /** Takes a slot when one is free and nobody waits before; returns whether it did. */
  take(): boolean {
    if (this.running >= this.slots || this.waiting.size !== 0) return false;
    this.running++;
    return true;
  }

  /** Puts a job at the end of the line. */
  wait(job: J): void {
    this.waiting.add(job);
  }

  /** Takes a job out of the line; returns whether it was waiting. */
  leave(job: J): boolean {
    return this.waiting.delete(job);
  }

  /** Gives a slot back. */
  release(): void {
    if (this.running > 0) this.running--;
  }

  /** The first job in line when a slot is free, which then holds that slot; else `undefined`. */
  next(): J | undefined {
    if (this.running >= this.slots) return undefined;
    for (const job of this.waiting) {
      this.waiting.delete(job);
      this.running++;
      return job;
    }
    return undefined;
  }

  /** Jobs waiting, and executors running. */
  get length(): number {
    return this.waiting.size;
  }
  get busy(): number {
    return this.running;
  }

  /** Forgets every waiting job. */
  clear(): void {
    this.waiting.clear();
  }
}
