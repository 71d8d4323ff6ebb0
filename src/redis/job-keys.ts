import type { BackendHost, StoredJob } from '../core/backend.js';
import { messageOf } from '../core/errors.js';
import { isValidJobId } from '../core/ids.js';
import { REPLACED_BY_KEY } from '../core/lifecycle.js';
import type { Connection } from './connection.js';
import type { Keys } from './keys.js';
import type { BackendLogger } from './options.js';
import type { ForeignEntries } from './outage.js';
import type { Writer } from './writer.js';

/** What the create of a keyed job claims: its key, and ARGV[9..11] of CREATE (key, keyConflict, refusal). */
export interface KeyClaim {
  key: string;
  args: [key: string, mode: 'refuse' | 'replace', refusal: string];
}

/** What keyed jobs need from the backend. */
export interface JobKeysContext {
  conn: Connection;
  keys: Keys;
  writer: Writer;
  host: BackendHost;
  log: BackendLogger;
  foreign: ForeignEntries;
  closed(): boolean;
  /** Cancels a job held by another process (see remote.ts). */
  cancel(jobId: string, reason: string): Promise<boolean | undefined>;
}

/**
 * Keyed jobs on Redis: at most one live job per key across every process. The key record lives in the
 * key's shard and a keyed job's id is drawn in that shard too, so the job's own CREATE claims the key
 * atomically (see keys.ts, scripts.ts). Redis's answer decides: a create that finds the key's job live
 * ends `cancelled` here as it did in Redis (`refuse`), or that job is cancelled where it runs (`replace`).
 */
export class JobKeys {
  constructor(private readonly c: JobKeysContext) {}

  /**
   * An id from `draw` in the key's shard: as many draws as there are shards on average (8 by default,
   * at most 1024: well under a millisecond).
   */
  idFor(key: string, draw: () => string): string {
    const shard = this.c.keys.shardOf(key);
    for (;;) {
      const id = draw();
      if (this.c.keys.shardOf(id) === shard) return id;
    }
  }

  /** Writes the create of a keyed job, which claims its key. */
  created(job: StoredJob, key: string): void {
    const claim: KeyClaim = { key, args: [key, this.c.host.keyConflict, refusal(key)] };
    this.c.writer.created(job.id, job.createdAt, job.owner ?? '', claim);
  }

  /** Redis's answer to a keyed create (see CREATE). */
  answered(jobId: string, key: string, reply: unknown): void {
    if (!Array.isArray(reply)) return;
    const [code, holder] = reply as [unknown, unknown];
    if (typeof holder !== 'string') return;
    // A normal refusal, not a failure: nothing is logged.
    if (code === 'busy') this.c.host.keyRefused(jobId, holder, refusal(key));
    else if (code === 'replaced') this.replace(holder, jobId);
  }

  /** The id a key's record names (the registry checks that job is live), or `undefined`. */
  async holderOf(key: string): Promise<string | undefined> {
    const record = this.c.keys.keyRecord(key);
    const replies = (await this.c.conn.reads.pipeline().type(record).get(record).exec()) ?? [];
    const [[typeError, type], [, id]] = replies as Array<[Error | null, unknown]>;
    if (typeError !== null) throw typeError;
    if (type === 'none') return undefined;
    if (type !== 'string') this.c.foreign.skip(record, 'a key record of the wrong type', String(type));
    else if (isValidJobId(id)) return id;
    else this.c.foreign.skip(record, 'a key record naming no job id', String(id).slice(0, 60));
    return undefined;
  }

  /** The key went to a newer job: its previous job is cancelled where it runs. */
  private replace(holder: string, by: string): void {
    if (this.c.host.holds(holder)) return void this.c.host.end(holder, 'cancelled', REPLACED_BY_KEY);
    this.c.cancel(holder, REPLACED_BY_KEY).catch((e: unknown) => {
      // Cut short by close(): the holder's owner, or the reaper, ends it.
      if (this.c.closed()) return;
      this.c.log.warn(
        `job-registry: job '${holder}', replaced by '${by}' as the live job of its key, could not be cancelled: ${messageOf(e)}`,
      );
    });
  }
}

/** The error a keyed job ends with when its key went to another live job first (`keyConflict: 'refuse'`). */
export function refusal(key: string): string {
  return `job-registry: another live job has the key '${key}'; this one was refused (keyConflict: 'refuse')`;
}
