import { Observable } from 'rxjs';
import {
  BackendError,
  JobCancelledError,
  JobFailedError,
  JobNotFoundError,
  JobRegistryError,
  ReplayExpiredError,
  ResumeAheadError,
  messageOf,
} from '../core/errors.js';
import type { TokenEvent } from '../core/types.js';
import { fieldMap } from './codec.js';
import type { RedisClient } from './connection.js';
import { compareIds, seqOf, tokenId, type Keys } from './keys.js';
import type { BackendLogger } from './options.js';
import type { Tailer, TailReader } from './tailer.js';

/** What a remote reader needs from the backend. */
export interface ReaderContext {
  started: Promise<void>;
  /** The read connection (never behind this process's queued writes). */
  reads: RedisClient;
  keys: Keys;
  log: BackendLogger;
  tailer(shard: number): Tailer;
  /** Registers a reader of a job held elsewhere; `onVanish` ends it when the job's data disappears. */
  watch(jobId: string, onVanish: (error: Error) => void): () => void;
  firstKept(jobId: string): Promise<number | undefined>;
}

const PAGE = 1000;

/**
 * Tokens of a job held by another process: replayed from its stream in pages, then followed live through
 * the shard's tailer. The seqs must follow each other: a missing one (trimmed by a bounded `replayLimit`
 * before this reader got it, or lost with Redis's data) ends the reader with `ReplayExpiredError` at the
 * first missing seq, never with a silent gap. A job whose data vanishes ends the reader with
 * `JobNotFoundError` within the lease.
 */
export function remoteTokens(
  ctx: ReaderContext,
  jobId: string,
  after: number | undefined,
): Observable<TokenEvent<unknown>> {
  return new Observable<TokenEvent<unknown>>((sub) => {
    let active = true;
    let lastSeq = after;
    const shard = ctx.keys.shardOf(jobId);
    const key = ctx.keys.tokens(jobId, shard);
    const end = (error?: Error): void => {
      if (!active) return;
      active = false;
      if (error === undefined) sub.complete();
      else sub.error(error);
    };
    const reader: TailReader = {
      jobId,
      lastId: after === undefined ? '0-0' : tokenId(after),
      deliver: (entryId, fields) => {
        if (!active) return true;
        // The hot path: a token entry, `s` (a string token, stored raw) or `t` (JSON), compared by seq.
        if (fields.length === 2 && (fields[0] === 's' || fields[0] === 't')) {
          const seq = seqOf(entryId);
          if (seq !== undefined) {
            if (lastSeq !== undefined && seq <= lastSeq) return false;
            if (lastSeq !== undefined && seq !== lastSeq + 1) {
              end(new ReplayExpiredError(jobId, lastSeq, seq));
              return true;
            }
            lastSeq = seq;
            reader.lastId = entryId;
            let token: unknown = fields[1];
            if (fields[0] === 't') {
              try {
                token = JSON.parse(fields[1]!);
              } catch (e) {
                end(new BackendError(`job-registry: token ${entryId} of ${key} is not JSON`, e));
                return true;
              }
            }
            sub.next({ seq, token });
            return false;
          }
        }
        if (compareIds(entryId, reader.lastId) <= 0) return false;
        reader.lastId = entryId;
        const f = fieldMap(fields);
        if (f.end !== undefined) {
          // Tokens before the end that never arrived (lost with Redis's data) are a gap, not an end.
          const count = f.count === undefined ? NaN : Number(f.count);
          // A resume point past the end (the end event's own id is the count: resuming there just ends).
          // A resume point past a completed job's end; past a failed one the reader gets the failure (it
          // may have seen tokens an owner that died never stored).
          if (after !== undefined && after > count && f.end === 'completed')
            end(new ResumeAheadError(jobId, after, count, true));
          else if (lastSeq !== undefined && lastSeq + 1 < count)
            end(new ReplayExpiredError(jobId, lastSeq, count));
          else if (f.end === 'completed') end();
          else if (f.end === 'cancelled') end(new JobCancelledError(jobId, f.error || 'job was cancelled'));
          else end(new JobFailedError(jobId, f.error || 'job failed', f.private !== '1'));
          return true;
        }
        ctx.log.warn(`job-registry: skipping a foreign entry ${entryId} in ${key}`);
        return false;
      },
      fail: (error) => end(error),
      close: () => end(),
    };
    const unwatch = ctx.watch(jobId, (error) => {
      ctx.tailer(shard).leave(key, reader);
      end(error);
    });
    const run = async (): Promise<void> => {
      await ctx.started;
      const [state, limit] = await ctx.reads.hmget(ctx.keys.meta(jobId, shard), 'state', 'limit');
      if (state === null)
        throw new JobNotFoundError(jobId, 'not in this process nor in Redis; it may have expired');
      // A job whose stream was never trimmed (it keeps every token, or fewer than its limit were made)
      // starts at seq 0: a fresh reader that finds a later first seq found a gap (tokens lost with
      // Redis's data), not a trimmed buffer.
      if (after === undefined && (limit === 'inf' || (await ctx.reads.xlen(key)) < Number(limit)))
        lastSeq = -1;
      if (after !== undefined) {
        const first = await ctx.firstKept(jobId);
        if (first !== undefined && after + 1 < first) throw new ReplayExpiredError(jobId, after, first);
      }
      // Replay in pages, then join the shard's tail; catch up again if the tail moved meanwhile.
      for (;;) {
        const page = await ctx.reads.xrange(key, '(' + reader.lastId, '+', 'COUNT', PAGE);
        if (!active) return;
        for (const [id, fields] of page) if (reader.deliver(id, fields)) return;
        if (page.length === PAGE) continue;
        if (ctx.tailer(shard).join(key, reader)) return;
      }
    };
    run().catch((e: unknown) =>
      end(
        e instanceof JobRegistryError
          ? e
          : new BackendError(`job-registry: reading ${jobId} from Redis failed: ${messageOf(e)}`, e),
      ),
    );
    return () => {
      active = false;
      unwatch();
      ctx.tailer(shard).leave(key, reader);
    };
  });
}
