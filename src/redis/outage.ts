import { messageOf } from '../core/errors.js';
import type { BackendLogger } from './options.js';

/**
 * The kinds of background work whose failure is an outage (readiness `503`, `failing` > 0), each with the
 * condition that closes it. Bad data in the registry's keys is never one (see {@link ForeignEntries}).
 *
 * - `connection`: a connection to Redis failed; closes when it is ready again.
 * - `start`: the backend could not start; closes never (the registry is unusable: make a new one).
 * - `writes`: a batch of writes failed; closes when a later batch is stored.
 * - `reads`: the blocking reads failed; closes on the next read Redis answers.
 * - `wake-ups`: waking the blocked reader failed; closes on the next wake-up stored.
 * - `key checks`: looking up key types after a refused read failed; closes on the next lookup answered.
 * - `lease renewal`: renewing this process's lease failed or hung; closes on the next renewal stored.
 * - `job checks`: the follow-up of a renewal (reconcile, expiry refresh) failed; closes when one succeeds.
 * - `sweep`: the sweep for dead processes failed; closes on the next sweep that completes.
 * - `reader holds`: keeping read jobs from expiring failed; closes on the next hold stored.
 * - `close`: a step of `close()` failed or timed out; the backend is closed, so it closes never.
 */
export type OutageKind =
  | 'connection'
  | 'start'
  | 'writes'
  | 'reads'
  | 'wake-ups'
  | 'key checks'
  | 'lease renewal'
  | 'job checks'
  | 'sweep'
  | 'reader holds'
  | 'close';

/**
 * Reports failures of background work (lease renewal, the blocking reads, writes) through the logger once
 * per outage: the first failure of a kind logs an error, later ones stay quiet until that kind works
 * again, which logs one line saying so.
 */
export class Outages {
  private readonly open = new Map<OutageKind, number>();
  /** When an outage last started or ended: until a while after it, what Redis shows may be stale. */
  lastChange = 0;

  constructor(private readonly log: BackendLogger) {}

  /** Failures seen, logged or not (for metrics). */
  failures = 0;

  /** A failure of `kind`; logged when it starts an outage. */
  fail(kind: OutageKind, what: string, error: unknown): void {
    this.failures++;
    if (this.open.has(kind)) return;
    this.open.set(kind, Date.now());
    this.lastChange = Date.now();
    this.log.error(`job-registry: ${what}: ${messageOf(error)}`);
  }

  /** `kind` works again. */
  ok(kind: OutageKind): void {
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
  since(kind: OutageKind): number | undefined {
    return this.open.get(kind);
  }
}

/** Keys remembered as already reported; past it the memory starts again (a key may then be logged twice). */
const MAX_REMEMBERED = 10_000;

/**
 * Foreign, malformed or corrupt data in the registry's keys (an events entry it cannot decode, a bad id
 * in an index, a job hash with an unknown state, a key of the wrong type): logged once per key with the
 * key, and skipped. Not an outage: the registry works on, and readiness stays true; a rolling deploy that
 * writes a newer format takes no replica out of rotation.
 */
export class ForeignEntries {
  private readonly seen = new Set<string>();
  /** Entries skipped, logged or not (for metrics). */
  skipped = 0;

  constructor(private readonly log: BackendLogger) {}

  /** Skips bad data under `key`; the first time for that key, logs a warning naming it. */
  skip(key: string, what: string, detail: unknown): void {
    this.skipped++;
    if (this.seen.has(key)) return;
    if (this.seen.size >= MAX_REMEMBERED) this.seen.clear();
    this.seen.add(key);
    this.log.warn(`job-registry: skipping ${what} in ${key}: ${messageOf(detail).slice(0, 200)}`);
  }
}

/** Waits for a step of `close()` at most `ms`; past that, reports `what` as a `close` outage and goes on. */
export async function closeWithin(
  outages: Outages,
  ms: number,
  work: Promise<unknown>,
  what: string,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
  try {
    if ((await Promise.race([work, late])) === 'late')
      outages.fail('close', `closing: ${what} within ${ms} ms`, 'going on without it');
  } finally {
    clearTimeout(timer);
  }
}
