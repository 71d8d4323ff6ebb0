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

/**
 * The open SSE streams of one handler: their counts against the limits (whole handler, per job, per
 * principal), and one heartbeat timer for all of them, running only while some are open.
 */
export class StreamTracker {
  private readonly open = new Set<Closable>();
  private readonly perJob = new Map<string, number>();
  private readonly perPrincipal = new Map<string, number>();
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private admitted = 0;

  constructor(private readonly limits: StreamLimits) {}

  get size(): number {
    return this.open.size;
  }

  /** Counts a new stream in, or throws `429 CAPACITY` when a limit is reached. */
  admit(jobId: string | undefined, principal: string | undefined): Ticket {
    const l = this.limits;
    if (this.admitted >= l.maxConnections) throw this.full('open streams (maxConnections)', l.maxConnections);
    if (jobId !== undefined && (this.perJob.get(jobId) ?? 0) >= l.maxStreamsPerJob)
      throw this.full('streams of this job (maxStreamsPerJob)', l.maxStreamsPerJob);
    if (principal !== undefined && (this.perPrincipal.get(principal) ?? 0) >= l.maxStreamsPerPrincipal)
      throw this.full('streams of this principal (maxStreamsPerPrincipal)', l.maxStreamsPerPrincipal);
    this.admitted++;
    // Counted only where a limit needs them: an unlimited count costs nothing per stream.
    const job = l.maxStreamsPerJob === Infinity ? undefined : jobId;
    const who = l.maxStreamsPerPrincipal === Infinity ? undefined : principal;
    if (job !== undefined) bump(this.perJob, job, 1);
    if (who !== undefined) bump(this.perPrincipal, who, 1);
    return job === undefined && who === undefined ? NO_COUNTS : { jobId: job, principal: who };
  }

  /** Gives a ticket's place back. Call once. */
  release(ticket: Ticket): void {
    this.admitted--;
    if (ticket.jobId !== undefined) bump(this.perJob, ticket.jobId, -1);
    if (ticket.principal !== undefined) bump(this.perPrincipal, ticket.principal, -1);
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
