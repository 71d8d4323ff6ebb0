import { messageOf } from '../core/errors.js';
import type { BackendLogger } from './options.js';

/**
 * Reports failures of background work (lease renewal, the blocking reads, writes) through the logger once
 * per outage: the first failure of a kind logs an error, later ones stay quiet until that kind works
 * again, which logs one line saying so.
 */
export class Outages {
  private readonly open = new Map<string, number>();
  /** When an outage last started or ended: until a while after it, what Redis shows may be stale. */
  lastChange = 0;

  constructor(private readonly log: BackendLogger) {}

  /** Failures seen, logged or not (for metrics). */
  failures = 0;

  /** A failure of `kind`; logged when it starts an outage. */
  fail(kind: string, what: string, error: unknown): void {
    this.failures++;
    if (this.open.has(kind)) return;
    this.open.set(kind, Date.now());
    this.lastChange = Date.now();
    this.log.error(`job-registry: ${what}: ${messageOf(error)}`);
  }

  /** `kind` works again. */
  ok(kind: string): void {
    const since = this.open.get(kind);
    if (since === undefined) return;
    this.open.delete(kind);
    this.lastChange = Date.now();
    const line = `job-registry: ${kind} works again after ${Date.now() - since} ms`;
    if (this.log.info !== undefined) this.log.info(line);
    else this.log.warn(line);
  }

  /** Kinds failing now. */
  get failing(): number {
    return this.open.size;
  }

  /** Since when `kind` has been failing, or `undefined`. */
  since(kind: string): number | undefined {
    return this.open.get(kind);
  }
}
