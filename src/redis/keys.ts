import { shardIndex, shardTags, slotOf } from './slot.js';

/**
 * Key layout. Jobs are spread over `shards` shards; every key of a shard shares one hash tag, picked so
 * the shards spread over the slot space (and so over every master of a Redis Cluster). A job's keys, its
 * shard's event stream and job index live in one slot, so one Lua script updates a job and writes its
 * event atomically, a pipeline per shard never spans slots, and one XREAD per shard reads its events and
 * every token stream tailed there.
 *
 *   <prefix>{<tag>}:job:<id>        hash: state, error, created_at, updated_at, token_count (terminal), owner,
 *                                    key (a keyed job's)
 *   <prefix>{<tag>}:tokens:<id>     stream: one entry per token, id `0-<seq+1>`, field `s` = a string token
 *                                    or `t` = any other token as JSON; then one end entry (auto id) with
 *                                    fields `end` = terminal state, `error`
 *   <prefix>{<tag>}:events          stream: registry events of this shard's jobs, and cancel requests
 *   <prefix>{<tag>}:jobs            sorted set: job ids by creation time (listJobs)
 *   <prefix>{<tag>}:live            hash: live job id -> owning process (the reaper's work list)
 *   <prefix>{<tag>}:key:<key>       string: the id of the live job of a key (`createJob({ key })`)
 *   <prefix>{<tag>}:wake:<owner>    stream: written to wake a process's blocked reader of this shard
 *   <prefix>owner:<owner>           string with a TTL: the lease of a live process
 *   <prefix>epoch                   string: when this prefix's data was first written (data loss shows)
 *
 * A key record lives in its key's shard (`shardIndex` of the key), and a keyed job's id is drawn again
 * until it falls in that shard too (as many uuids as there are shards, on average; ids stay opaque). So the
 * script that creates a job claims its key atomically, in one slot, also on a Redis Cluster, and every
 * script that ends a job frees its key: the record's name is the job hash's base and the hash's `key`.
 *
 * Every key has an expiry or a removal path: job keys expire `retention` after the job ends, the event
 * and index streams and wake streams carry a TTL refreshed on write, the live hash empties itself, a key
 * record goes when its job ends and carries the live job keys' TTL, refreshed with theirs (a record
 * naming a missing or ended job counts as free).
 */
export class Keys {
  /** The hash tag of each shard, by shard index. */
  readonly tags: string[];
  /** The cluster slot of each shard, by shard index. */
  readonly slots: number[];
  private readonly bases: string[];

  constructor(
    /** The prefix of every key. */
    readonly prefix: string,
    /** How many shards jobs are spread over. */
    readonly shards: number,
  ) {
    this.tags = shardTags(shards);
    this.slots = this.tags.map(slotOf);
    this.bases = this.tags.map((t) => `${prefix}{${t}}:`);
  }

  /** The shard a job (or a key, by the same hash) belongs to. */
  shardOf(id: string): number {
    return shardIndex(id, this.shards);
  }

  /** A job's hash. */
  meta(id: string, shard = this.shardOf(id)): string {
    return `${this.bases[shard]}job:${id}`;
  }

  /** A job's token stream. */
  tokens(id: string, shard = this.shardOf(id)): string {
    return `${this.bases[shard]}tokens:${id}`;
  }

  /** The record of a key: the id of its live job. In the key's shard, as the ids of its jobs are. */
  keyRecord(key: string, shard = this.shardOf(key)): string {
    return `${this.bases[shard]}key:${key}`;
  }

  /** The keys every script on one job takes first: its hash, its token stream, its shard's events and live hash. */
  ofJob(id: string, shard = this.shardOf(id)): [string, string, string, string] {
    return [this.meta(id, shard), this.tokens(id, shard), this.events(shard), this.live(shard)];
  }

  /** A shard's event stream: registry events of its jobs, and cancel requests. */
  events(shard: number): string {
    return `${this.bases[shard]}events`;
  }

  /** A shard's job index: job ids by creation time. */
  jobs(shard: number): string {
    return `${this.bases[shard]}jobs`;
  }

  /** A shard's live jobs: job id to owning process. */
  live(shard: number): string {
    return `${this.bases[shard]}live`;
  }

  /** The stream written to wake a process's blocked reader of a shard. */
  wake(shard: number, owner: string): string {
    return `${this.bases[shard]}wake:${owner}`;
  }

  /** A live process's lease. */
  owner(owner: string): string {
    return `${this.prefix}owner:${owner}`;
  }

  /** When the data under this prefix was first written (see the sweep in leases.ts). */
  get epoch(): string {
    return `${this.prefix}epoch`;
  }
}

const PREFIX = /^[A-Za-z0-9:._-]{0,100}$/;

/** Whether a key prefix is safe: no pattern or hash-tag characters. */
export function isValidPrefix(prefix: string): boolean {
  return typeof prefix === 'string' && PREFIX.test(prefix);
}

/** Stream id of the token with this seq. */
export function tokenId(seq: number): string {
  return `0-${seq + 1}`;
}

/** Seq of a token stream id, or `undefined` for an id that is not a token's (the end entry). */
export function seqOf(id: string): number | undefined {
  if (!id.startsWith('0-')) return undefined;
  const n = Number(id.slice(2));
  return Number.isSafeInteger(n) && n > 0 ? n - 1 : undefined;
}

/** Compares two stream ids (`ms-seq`, decimal without leading zeros) without parsing numbers. */
export function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  const ia = a.indexOf('-');
  const ib = b.indexOf('-');
  if (ia !== ib) return ia - ib;
  for (let i = 0; i < ia; i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d;
  }
  const la = a.length - ia;
  const lb = b.length - ib;
  if (la !== lb) return la - lb;
  return a < b ? -1 : a > b ? 1 : 0;
}
