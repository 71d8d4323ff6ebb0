import type { RedisClient } from './connection.js';
import type { Keys } from './keys.js';
import type { Outages } from './outage.js';

/** How often held jobs' keys get their TTL pushed out, and by how much (ms). */
const REFRESH_MS = 1000;
const EXTEND_MS = 5000;

interface Hold {
  /** Readers holding it now. */
  count: number;
  /** No hold lasts past this (`graceMs` after the last hold). */
  until: number;
  /** When its keys were last pushed out: a stream that pauses often costs one write per REFRESH_MS. */
  extendedAt: number;
}

/**
 * Keeps the keys of jobs that a paused reader here still has to catch up on (a slow HTTP stream held
 * back by backpressure) from expiring under it: while held, their TTL is pushed out (`PEXPIRE … GT`, so
 * it only ever grows), for at most `graceMs` per hold, and a short-lived hold key tells the job's owner
 * to wait before its retention removes the job. One unref'd timer serves every hold.
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
    const now = Date.now();
    let h = this.held.get(jobId);
    if (h === undefined) {
      h = { count: 0, until: 0, extendedAt: 0 };
      this.held.set(jobId, h);
    }
    h.count++;
    h.until = Math.max(h.until, now + this.graceMs);
    if (now - h.extendedAt >= REFRESH_MS) {
      h.extendedAt = now;
      this.extend(jobId);
    }
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.refresh(), REFRESH_MS);
      this.timer.unref?.();
    }
    const hold = h;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // Forgotten at the next refresh: a stream that pauses again soon does not write again.
      hold.count--;
    };
  }

  close(): void {
    this.held.clear();
    this.stop();
  }

  private refresh(): void {
    const now = Date.now();
    for (const [jobId, h] of this.held) {
      if (h.count <= 0 || now > h.until) this.held.delete(jobId);
      else if (now - h.extendedAt >= REFRESH_MS) {
        h.extendedAt = now;
        this.extend(jobId);
      }
    }
    if (this.held.size === 0) this.stop();
  }

  private extend(jobId: string): void {
    const shard = this.keys.shardOf(jobId);
    const cmd = this.cmd();
    const meta = this.keys.meta(jobId, shard);
    Promise.all([
      cmd.pexpire(meta, EXTEND_MS, 'GT'),
      cmd.pexpire(this.keys.tokens(jobId, shard), EXTEND_MS, 'GT'),
      // Tells the owner, whose retention would remove the job, that a reader still needs it.
      cmd.set(holdKey(meta), '1', 'PX', EXTEND_MS),
    ]).then(
      () => this.outages.ok('reader holds'),
      (e: unknown) => this.outages.fail('reader holds', 'keeping a read job from expiring failed', e),
    );
  }

  /** Whether any process holds a job now (its owner then waits before removing it). Never rejects. */
  async isHeld(jobId: string): Promise<boolean> {
    try {
      const held = (await this.cmd().exists(holdKey(this.keys.meta(jobId, this.keys.shardOf(jobId))))) === 1;
      this.outages.ok('reader holds');
      return held;
    } catch (e) {
      this.outages.fail('reader holds', 'checking whether a reader holds a job failed', e);
      return false;
    }
  }

  private stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** The key marking a job as held by a paused reader (beside its hash, in the same slot). */
function holdKey(meta: string): string {
  return `${meta}:hold`;
}
