import type { BackendHost } from '../core/backend.js';
import { messageOf } from '../core/errors.js';
import { isTerminal } from '../core/states.js';
import type { JobState } from '../core/types.js';
import type { Connection } from './connection.js';
import { seqOf, tokenId, type Keys } from './keys.js';
import type { BackendLogger } from './options.js';
import type { Outages } from './outage.js';
import type { Writer } from './writer.js';

const LOST = 'job-registry: Redis lost this job (restarted without persistence, or flushed)';

/** How long after a restore that did not reach Redis it is written again (ms). */
const RESTORE_RETRY_MS = 250;

/**
 * Puts right what Redis and this process disagree on, for jobs this process holds: a job Redis lost is
 * written back as ended (failed, or the end it had here), an end another process wrote wins here too,
 * and a refused token write is explained from the stream itself (never from an error's text).
 */
export class Repair {
  constructor(
    private readonly conn: Connection,
    private readonly keys: Keys,
    private readonly writer: Writer,
    private readonly host: BackendHost,
    private readonly log: BackendLogger,
    private readonly outages: Outages,
    private readonly closed: () => boolean,
    /** The cancel request behind a job's end not yet stored ('' for none): a restore names it too. */
    private readonly requestOf: (jobId: string) => string,
  ) {}

  /**
   * Jobs being restored: every write of a lost job that was sent before its restore reports it lost
   * again, and those reports (one per token run) neither log nor write again until Redis has the restore.
   */
  private readonly restoring = new Set<string>();

  /** A job this process holds has no data in Redis: restore it as ended, so every reader ends. */
  lost(jobId: string): void {
    if (this.restoring.has(jobId)) return;
    const held = this.host?.describe(jobId);
    if (held === undefined || this.closed()) return;
    this.log.warn(`job-registry: Redis lost job '${jobId}'; it ends as failed`);
    if (!isTerminal(held.state)) this.host!.adoptEnd(jobId, 'failed', LOST);
    this.restoring.add(jobId);
    // Read now: the request is forgotten once the end that carried it was answered, retries or not.
    this.restore(jobId, held.state, this.requestOf(jobId));
  }

  /**
   * Writes the job back as ended; a restore that did not reach Redis is written again until one does
   * (otherwise the job would stay gone everywhere but here), or the job is gone here too.
   */
  private restore(jobId: string, from: JobState, request: string): void {
    const now = this.host?.describe(jobId);
    if (now === undefined || this.closed()) return void this.restoring.delete(jobId);
    void this.writer
      .restoreEnded(
        jobId,
        now.state,
        now.error ?? '',
        Date.now(),
        now.tokenCount,
        now.createdAt,
        from,
        now.errorPrivate === true,
        now.owner ?? '',
        request,
        now.key ?? '',
      )
      .then((stored) => {
        if (stored) return void this.restoring.delete(jobId);
        // The batch's failure was logged by the writer (once per outage).
        setTimeout(() => this.restore(jobId, from, request), RESTORE_RETRY_MS).unref();
      });
  }

  adopt(jobId: string, state: string, error: string, errorPrivate = false): void {
    if (state !== 'completed' && state !== 'failed' && state !== 'cancelled') return;
    const held = this.host?.describe(jobId);
    if (held !== undefined && isTerminal(held.state) && held.state !== state)
      this.log.warn(
        `job-registry: job '${jobId}' ended here as ${held.state}, but Redis already had it ${state}; every process now reports ${state}`,
      );
    this.host?.adoptEnd(jobId, state, error === '' ? undefined : error, errorPrivate);
  }

  /**
   * Redis refused a run of tokens (seqs `first` to `last`): find out why from the stream itself, not
   * from the error's text. Every entry of the run there (those a bounded buffer trimmed aside): a write
   * resent after a reconnect, stored once.
   */
  async checkRefused(jobId: string, first: number, last: number): Promise<void> {
    try {
      const shard = this.keys.shardOf(jobId);
      const key = this.keys.tokens(jobId, shard);
      // One script call, not the run's entries read back: a reconnect may resend thousands of them.
      const [head, stored, tail] = await this.conn.scripts.jrRunCheck(key, tokenId(first), tokenId(last));
      if (tail === null) return this.lost(jobId);
      // Entries below the first one kept were trimmed by a bounded buffer: only the rest can be checked.
      const from = Math.max(first, seqOf(head!) ?? Infinity);
      if (from <= last && stored === last - from + 1) return;
      const lastSeq = seqOf(tail);
      if (lastSeq === undefined) {
        // The stream ended: another process ended the job. Take its end.
        const [state, error, priv] = await this.conn.cmd.hmget(
          this.keys.meta(jobId, shard),
          'state',
          'error',
          'error_private',
        );
        if (state === null) return this.lost(jobId);
        return this.adopt(jobId, state, error ?? '', priv === '1');
      }
      if (from > last) return; // the whole run lies below the first entry kept: stored, then trimmed
      this.host?.end(jobId, 'failed', `job-registry: Redis refused token ${last} of job '${jobId}'`);
    } catch (e) {
      this.outages.fail('writes', `checking a refused token write of '${jobId}' failed`, e);
      this.host?.end(jobId, 'failed', `job-registry: Redis refused token ${last}: ${messageOf(e)}`);
    }
  }
}
