import { ReplyError } from 'ioredis';
import { BackendError } from '../core/errors.js';
import { disconnect, type RedisClient } from './connection.js';
import { compareIds } from './keys.js';
import type { ForeignEntries, Outages } from './outage.js';

type Entries = Array<[string, string[]]>;

/** A reader of one job's token stream, fed by a tailer once it has caught up. */
export interface TailReader {
  readonly jobId: string;
  /** Stream id of the last entry this reader got. */
  lastId: string;
  /** Delivers one entry; true when the reader has ended. */
  deliver(entryId: string, fields: string[]): boolean;
  /** Ends the reader with an error. */
  fail(error: Error): void;
  /** The backend closed: complete, as dispose() completes every stream. */
  close(): void;
}

interface Tail {
  key: string;
  jobId: string;
  cursor: string;
  readers: Set<TailReader>;
}

export interface TailerConfig {
  /** The blocking connection (used by this tailer only) and the read connection (wake writes, checks). */
  blocking: RedisClient;
  reads: RedisClient;
  /** Event stream keys of the shards this tailer reads, and the shard number of each. */
  events: string[];
  shards: number[];
  /** This process's wake stream, in the same slot as `events`. */
  wakeKey: string;
  blockMs: number;
  leaseMs: number;
  outages: Outages;
  /** Where keys of the wrong type are reported (skipped, not an outage). */
  foreign: ForeignEntries;
  onEvents(shard: number, entries: Entries): void;
}

/**
 * One blocking `XREAD` loop over a group of shards (all of them on a single Redis, one on a cluster):
 * their event streams, every token stream a reader of this process tails there, and this process's wake
 * stream. A reader that joins while the `XREAD` blocks is picked up at once: the tailer appends to its
 * own wake stream, which ends the block (no `CLIENT` command needed, so it works where managed Redis
 * forbids them). Failures are logged once per outage; readers are failed with `BackendError` when reads
 * have failed for longer than the lease, so none of them waits forever.
 */
export class Tailer {
  private readonly tails = new Map<string, Tail>();
  private readonly cursors: string[];
  private wakeCursor = '0-0';
  private version = 0;
  private blockedVersion = -1;
  private waking = false;
  private closed = false;
  private done: Promise<void> | undefined;
  /** Keys found to hold another type than a stream, skipped until the given time. */
  private readonly skip = new Map<string, number>();

  private readonly eventsIndex: Map<string, number>;
  /** The XREAD arguments of the last read, kept while the tails stay the same (see `args`). */
  private xread: { version: number; args: string[]; tails: Tail[]; base: number } | undefined;

  constructor(private readonly c: TailerConfig) {
    this.cursors = c.events.map(() => '0-0');
    this.eventsIndex = new Map(c.events.map((k, i) => [k, i]));
  }

  /** Starts reading events after the newest entry of each shard's stream. */
  async start(): Promise<void> {
    if (this.c.blocking.status === 'wait') await this.c.blocking.connect();
    for (let i = 0; i < this.c.events.length; i++) {
      const last = await this.c.reads.xrevrange(this.c.events[i]!, '+', '-', 'COUNT', 1);
      if (last.length > 0) this.cursors[i] = last[0]![0];
    }
    this.done = this.loop();
  }

  /**
   * Adds a reader that has caught up to `reader.lastId`. False when the tail of that stream is already
   * further: the reader must read up to it first, then join again.
   */
  join(key: string, reader: TailReader): boolean {
    if (this.closed) {
      reader.close();
      return true;
    }
    const tail = this.tails.get(key);
    if (tail === undefined) {
      this.tails.set(key, { key, jobId: reader.jobId, cursor: reader.lastId, readers: new Set([reader]) });
      this.version++;
      this.wake();
      return true;
    }
    if (compareIds(reader.lastId, tail.cursor) < 0) return false;
    tail.readers.add(reader);
    return true;
  }

  leave(key: string, reader: TailReader): void {
    const tail = this.tails.get(key);
    if (tail !== undefined && tail.readers.delete(reader) && tail.readers.size === 0) this.drop(tail);
  }

  /** Ends every reader of a job with an error (its data vanished). */
  failJob(jobId: string, error: Error): void {
    for (const tail of [...this.tails.values()])
      if (tail.jobId === jobId) {
        this.drop(tail);
        for (const r of tail.readers) r.fail(error);
      }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const tail of this.tails.values()) for (const r of tail.readers) r.close();
    this.tails.clear();
    await disconnect(this.c.blocking);
    await this.done;
  }

  private drop(tail: Tail): void {
    if (this.tails.get(tail.key) === tail) {
      this.tails.delete(tail.key);
      this.version++;
    }
  }

  private wake(): void {
    if (this.waking || this.blockedVersion === -1 || this.blockedVersion === this.version) return;
    this.waking = true;
    const key = this.c.wakeKey;
    Promise.all([
      this.c.reads.xadd(key, 'MAXLEN', 1, '*', 'w', '1'),
      this.c.reads.pexpire(key, this.c.leaseMs * 3),
    ]).then(
      () => {
        this.c.outages.ok('wake-ups');
        this.waking = false;
        this.wake(); // a reader that joined while this wake-up was in flight
      },
      (e: unknown) => {
        this.waking = false;
        this.c.outages.fail(
          'wake-ups',
          `waking the blocked reader failed; new readers wait up to blockMs (${this.c.blockMs} ms) for their first token`,
          e,
        );
      },
    );
  }

  /**
   * The XREAD arguments: `COUNT n BLOCK ms STREAMS <keys> <ids>`, kept from one read to the next while
   * the set of streams stays the same (only the ids are written again), so a tailer of a thousand jobs
   * does not build two thousand-long arrays per read.
   */
  private args(now: number): string[] {
    const cached = this.xread;
    if (cached !== undefined && cached.version === this.version && this.skip.size === 0) {
      const { args, tails, base } = cached;
      let i = base;
      for (let k = 0; k < this.cursors.length; k++) args[i++] = this.cursors[k]!;
      args[i++] = this.wakeCursor;
      for (const t of tails) args[i++] = t.cursor;
      return args;
    }
    const tails = [...this.tails.values()].filter((t) => !this.skipped(t.key, now));
    const keys: string[] = [];
    const ids: string[] = [];
    this.c.events.forEach((k, i) => {
      if (!this.skipped(k, now)) (keys.push(k), ids.push(this.cursors[i]!));
    });
    const all = keys.length === this.c.events.length;
    keys.push(this.c.wakeKey);
    ids.push(this.wakeCursor);
    for (const t of tails) (keys.push(t.key), ids.push(t.cursor));
    const args = ['COUNT', '1000', 'BLOCK', String(this.c.blockMs), 'STREAMS', ...keys, ...ids];
    // Kept only when no key is skipped (the event streams are then all there, in order).
    this.xread =
      all && this.skip.size === 0 ? { version: this.version, args, tails, base: 5 + keys.length } : undefined;
    return args;
  }

  private async loop(): Promise<void> {
    let backoff = 50;
    while (!this.closed) {
      const args = this.args(Date.now());
      let res: Array<[string, Entries]> | null;
      this.blockedVersion = this.version;
      try {
        res = (await this.c.blocking.call('xread', args)) as typeof res;
        this.c.outages.ok('reads');
        backoff = 50;
      } catch (e) {
        this.blockedVersion = -1;
        if (this.closed) break;
        // A key of the wrong type refuses the whole read: once it is found and skipped, Redis is fine.
        const isolated =
          e instanceof ReplyError && (await this.isolate(args.slice(5, 5 + (args.length - 5) / 2)));
        if (isolated) continue;
        this.c.outages.fail('reads', `blocking reads from Redis failed; remote readers wait`, e);
        this.failReadersAfterLease();
        await new Promise((r) => setTimeout(r, backoff).unref());
        backoff = Math.min(backoff * 2, 2000);
        continue;
      }
      this.blockedVersion = -1;
      if (res === null) continue;
      // Token entries first: a reader gets its job's end entry before a `removed` event of the same read.
      for (const [key, entries] of res) {
        const tail = this.tails.get(key);
        if (tail !== undefined) this.feed(tail, entries);
      }
      for (const [key, entries] of res) {
        if (key === this.c.wakeKey) this.wakeCursor = entries[entries.length - 1]![0];
        else {
          const i = this.eventsIndex.get(key);
          if (i === undefined || entries.length === 0) continue;
          this.cursors[i] = entries[entries.length - 1]![0];
          this.c.onEvents(this.c.shards[i]!, entries);
        }
      }
    }
  }

  private feed(tail: Tail, entries: Entries): void {
    let ended: TailReader[] | undefined;
    for (const [id, fields] of entries) {
      tail.cursor = id;
      for (const reader of tail.readers) if (reader.deliver(id, fields)) (ended ??= []).push(reader);
    }
    if (ended !== undefined) for (const reader of ended) tail.readers.delete(reader);
    if (tail.readers.size === 0) this.drop(tail);
  }

  private skipped(key: string, now: number): boolean {
    const until = this.skip.get(key);
    if (until === undefined) return false;
    if (until > now) return true;
    this.skip.delete(key);
    return false;
  }

  // An error reply names no key: find the keys that hold something else than a stream. Their readers
  // fail; an event stream of the wrong type is skipped for a while (logged once), so the others go on.
  // Whether such a key was found.
  private async isolate(keys: string[]): Promise<boolean> {
    let types: string[];
    try {
      types = await Promise.all(keys.map((k) => this.c.reads.type(k)));
      this.c.outages.ok('key checks');
    } catch (e) {
      this.c.outages.fail('key checks', 'checking key types after a failed read failed', e);
      return false;
    }
    let found = false;
    const ownWake: string[] = [];
    keys.forEach((key, i) => {
      const type = types[i];
      if (type === 'stream' || type === 'none') return;
      found = true;
      const error = new BackendError(`job-registry: Redis key ${key} holds a ${type}, not a stream`);
      this.c.foreign.skip(key, 'a key of the wrong type', error);
      // This process's own wake stream is in every read: it is made again rather than skipped.
      if (key === this.c.wakeKey) return void ownWake.push(key);
      const tail = this.tails.get(key);
      if (tail !== undefined) {
        this.drop(tail);
        for (const r of tail.readers) r.fail(error);
      } else this.skip.set(key, Date.now() + 10 * this.c.blockMs);
    });
    if (ownWake.length > 0) {
      try {
        await this.c.reads.del(...ownWake);
        this.wakeCursor = '0-0';
      } catch (e) {
        this.c.outages.fail('key checks', 'removing a wake key of the wrong type failed', e);
        return false;
      }
    }
    return found;
  }

  private failReadersAfterLease(): void {
    const since = this.c.outages.since('reads');
    if (since === undefined || Date.now() - since < this.c.leaseMs) return;
    const error = new BackendError(
      `job-registry: reads from Redis have failed for ${Date.now() - since} ms (leaseMs ${this.c.leaseMs})`,
    );
    for (const tail of [...this.tails.values()]) {
      this.drop(tail);
      for (const r of tail.readers) r.fail(error);
    }
  }
}
