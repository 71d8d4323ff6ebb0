import type { RedisClient } from './connection.js';
import type { Keys } from './keys.js';
import type { Outages } from './outage.js';

/** How often held jobs' keys get their TTL pushed out, and by how much (ms). */
const REFRESH_MS = 1000;
const EXTEND_MS = 5000;

interface Hold {
  count: number;
  until: number;
}

/**
 * Keeps the keys of jobs that a paused reader here still has to catch up on (a slow HTTP stream held
 * back by backpressure) from expiring under it: while held, their TTL is pushed out (`PEXPIRE … GT`, so
 * it only ever grows), for at most `graceMs` per hold. One unref'd timer serves every hold.
 */
export class ReaderHolds {
  private readonly held = new Map<string, Hold>();
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly cmd: () => RedisClient,
    private readonly keys: Keys,
    private readonly graceMs: number,
    private readonly outages: Outages,
  ) {}

  /** Holds a job's keys; returns the release (idempotent). */
  hold(jobId: string): () => void {
    const until = Date.now() + this.graceMs;
    const h = this.held.get(jobId);
    if (h === undefined) this.held.set(jobId, { count: 1, until });
    else {
      h.count++;
      h.until = Math.max(h.until, until);
    }
    this.extend(jobId);
    this.timer ??= setInterval(() => this.refresh(), REFRESH_MS);
    this.timer.unref?.();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const now = this.held.get(jobId);
      if (now !== undefined && --now.count <= 0) this.held.delete(jobId);
      if (this.held.size === 0) this.stop();
    };
  }

  close(): void {
    this.held.clear();
    this.stop();
  }

  private refresh(): void {
    const now = Date.now();
    for (const [jobId, h] of this.held) {
      if (now > h.until) this.held.delete(jobId);
      else this.extend(jobId);
    }
    if (this.held.size === 0) this.stop();
  }

  private extend(jobId: string): void {
    const shard = this.keys.shardOf(jobId);
    const cmd = this.cmd();
    Promise.all([
      cmd.pexpire(this.keys.meta(jobId, shard), EXTEND_MS, 'GT'),
      cmd.pexpire(this.keys.tokens(jobId, shard), EXTEND_MS, 'GT'),
    ]).then(
      () => this.outages.ok('reader holds'),
      (e: unknown) => this.outages.fail('reader holds', 'keeping a read job from expiring failed', e),
    );
  }

  private stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
