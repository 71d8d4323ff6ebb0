import { HttpError } from './status.js';
import { comment } from './sse.js';

/** An open SSE response, as the tracker sees it. */
export interface Closable {
  writeRaw(chunk: string): void;
  close(): void;
}

/** The limits a tracker enforces, and the `Retry-After` of its `429`. */
export interface StreamLimits {
  maxConnections: number;
  maxStreamsPerJob: number;
  maxStreamsPerPrincipal: number;
  retryAfterSeconds: number;
  heartbeatMs: number;
}

const NO_COUNTS: Ticket = Object.freeze({ jobId: undefined, principal: undefined });

/** A stream's place in the counts; pass it back to `release`. */
export interface Ticket {
  jobId: string | undefined;
  principal: string | undefined;
}

/** Open readers of every handler of one registry (SSE, long-poll, Responses and chat streams), by job and principal. */
export class ReaderCounts {
  admitted = 0;
  readonly perJob = new Map<string, number>();
  readonly perPrincipal = new Map<string, number>();
  /** Some handler limits readers per job / per principal: only then are they counted (a count costs heap). */
  byJob = false;
  byPrincipal = false;
}

const SHARED = new WeakMap<object, ReaderCounts>();

/** The reader counts every handler over `registry` shares: one handler's limits bound them all. */
export function readerCountsOf(registry: object): ReaderCounts {
  let counts = SHARED.get(registry);
  if (counts === undefined) SHARED.set(registry, (counts = new ReaderCounts()));
  return counts;
}

/**
 * The open SSE streams of one handler, counted with those of every other handler over the same registry
 * against this handler's limits (in all, per job, per principal), and one heartbeat timer for this
 * handler's, running only while some are open.
 */
export class StreamTracker {
  private readonly open = new Set<Closable>();
  private heartbeat: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly limits: StreamLimits,
    private readonly counts: ReaderCounts = new ReaderCounts(),
  ) {
    if (limits.maxStreamsPerJob !== Infinity) counts.byJob = true;
    if (limits.maxStreamsPerPrincipal !== Infinity) counts.byPrincipal = true;
  }

  get size(): number {
    return this.open.size;
  }

  /** Counts a new stream in, or throws `429 CAPACITY` when a limit is reached. */
  admit(jobId: string | undefined, principal: string | undefined): Ticket {
    const l = this.limits;
    const c = this.counts;
    if (c.admitted >= l.maxConnections) throw this.full('open streams (maxConnections)', l.maxConnections);
    if (jobId !== undefined && (c.perJob.get(jobId) ?? 0) >= l.maxStreamsPerJob)
      throw this.full('streams of this job (maxStreamsPerJob)', l.maxStreamsPerJob);
    if (principal !== undefined && (c.perPrincipal.get(principal) ?? 0) >= l.maxStreamsPerPrincipal)
      throw this.full('streams of this principal (maxStreamsPerPrincipal)', l.maxStreamsPerPrincipal);
    c.admitted++;
    // Counted where any handler over the registry limits them (not only this one's limits): an
    // unlimited count costs nothing per stream.
    const job = c.byJob ? jobId : undefined;
    const who = c.byPrincipal ? principal : undefined;
    if (job !== undefined) bump(c.perJob, job, 1);
    if (who !== undefined) bump(c.perPrincipal, who, 1);
    return job === undefined && who === undefined ? NO_COUNTS : { jobId: job, principal: who };
  }

  /** Gives a ticket's place back. Call once. */
  release(ticket: Ticket): void {
    const c = this.counts;
    c.admitted--;
    if (ticket.jobId !== undefined) bump(c.perJob, ticket.jobId, -1);
    if (ticket.principal !== undefined) bump(c.perPrincipal, ticket.principal, -1);
  }

  /** A stream now open: it gets heartbeats until `untrack`. */
  track(c: Closable): void {
    this.open.add(c);
    if (this.heartbeat === undefined && this.limits.heartbeatMs > 0) {
      this.heartbeat = setInterval(() => {
        for (const conn of this.open) conn.writeRaw(comment('ping'));
      }, this.limits.heartbeatMs);
      this.heartbeat.unref();
    }
  }

  untrack(c: Closable): void {
    this.open.delete(c);
    if (this.open.size === 0) this.stopHeartbeat();
  }

  /** Ends every open stream and stops the heartbeat. */
  closeAll(): void {
    for (const c of [...this.open]) c.close();
    this.stopHeartbeat();
  }

  private stopHeartbeat(): void {
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  private full(what: string, max: number): HttpError {
    return new HttpError(429, 'CAPACITY', `job-registry: too many ${what}: ${max}; retry later`, {
      'Retry-After': String(this.limits.retryAfterSeconds),
    });
  }
}

function bump(map: Map<string, number>, key: string, by: number): void {
  const n = (map.get(key) ?? 0) + by;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}
