import type {
  StoredStream,
  StreamAppend,
  StreamAppendResult,
  StreamInit,
  StreamStore,
} from '../core/streams.js';
import type { Observable, Subscription } from 'rxjs';
import { uuidV4 } from '../core/ids.js';
import { isTerminal } from '../core/states.js';
import type { JobSnapshot } from '../core/types.js';
import type { StreamEvent } from './codec.js';
import type { Connection } from './connection.js';
import type { Keys } from './keys.js';
import { STREAM_APPEND, STREAM_CREATE, STREAM_END, STREAM_TOUCH } from './stream-scripts.js';

interface StreamCommands {
  jrStreamCreate(...args: (string | number)[]): Promise<[string, string?]>;
  jrStreamAppend(...args: (string | number)[]): Promise<string[]>;
  jrStreamTouch(...args: (string | number)[]): Promise<number>;
  jrStreamEnd(...args: (string | number)[]): Promise<string>;
}

/** What the store needs of its backend. */
export interface StreamStoreContext {
  conn: Connection;
  keys: Keys;
  /** The origin its events carry: not this process's own, so this process's registry sees them too. */
  origin: string;
  eventsMaxLen: number;
  shardTtl: number;
  /** A terminal stream's keys live this long (-1: kept). */
  retentionMs: number;
  findJob(jobId: string): Promise<JobSnapshot | undefined>;
  /** Every entry of every shard's event stream, decoded (this process's own stream writes too). */
  events: Observable<StreamEvent>;
}

const NAME = /^[\s\S]{1,1024}$/;

/**
 * Durable Streams kept in Redis (see stream-scripts.ts for the layout): every process reads, appends,
 * forks and deletes every stream through one script per step, and a name is one stream everywhere.
 */
export class RedisStreamStore implements StreamStore {
  private readonly cmd: StreamCommands;
  /** Open streams this process made, by job: their principal. */
  private readonly mine = new Map<string, string>();
  private readonly ends: Subscription;

  constructor(private readonly c: StreamStoreContext) {
    // Whichever process ends a stream, its end comes through the events.
    this.ends = c.events.subscribe((s) => {
      if (s.kind !== 'event') return;
      const e = s.event;
      if (e.type === 'removed' || (e.type === 'stateChanged' && isTerminal(e.to))) this.mine.delete(e.jobId);
    });
    const client = c.conn.cmd;
    client.defineCommand('jrStreamCreate', { numberOfKeys: 6, lua: STREAM_CREATE });
    client.defineCommand('jrStreamAppend', { numberOfKeys: 6, lua: STREAM_APPEND });
    client.defineCommand('jrStreamTouch', { numberOfKeys: 6, lua: STREAM_TOUCH });
    client.defineCommand('jrStreamEnd', { numberOfKeys: 6, lua: STREAM_END });
    this.cmd = client as unknown as StreamCommands;
  }

  /** The name record of a stream, in its name's shard. */
  private nameKey(name: string): string {
    const { keys } = this.c;
    return `${keys.prefix}{${keys.tags[keys.shardOf(name)]!}}:stream:${name}`;
  }

  /** The six keys every script takes, for a stream's job. */
  private keysOf(name: string, jobId: string): string[] {
    const { keys } = this.c;
    const shard = keys.shardOf(jobId);
    return [
      this.nameKey(name),
      keys.meta(jobId, shard),
      keys.tokens(jobId, shard),
      this.startsKey(jobId, shard),
      keys.events(shard),
      keys.jobs(shard),
    ];
  }

  private head(jobId: string, keepMs: number): Array<string | number> {
    return [
      jobId,
      this.c.origin,
      this.c.eventsMaxLen,
      this.c.shardTtl,
      Date.now(),
      this.keep(keepMs),
      this.c.retentionMs,
    ];
  }

  /**
   * How long a stream's keys live: until its deadline (`keepMs` from now), then the retention; a stream
   * without a deadline, the retention (-1: kept). A stream's deadline ends it even with no retention.
   */
  private keep(keepMs: number): number {
    const retention = this.c.retentionMs;
    if (!Number.isFinite(keepMs)) return retention < 0 ? -1 : Math.max(1, retention);
    return Math.max(1, Math.ceil(Math.max(0, keepMs) + Math.max(0, retention)));
  }

  async lookup(name: string): Promise<{ stream: StoredStream; snap: JobSnapshot } | undefined> {
    if (!NAME.test(name)) return undefined;
    const jobId = await this.c.conn.reads.get(this.nameKey(name));
    if (jobId === null) return undefined;
    const [meta, snap] = await Promise.all([
      this.c.conn.reads.hgetall(this.c.keys.meta(jobId)),
      this.c.findJob(jobId),
    ]);
    if (snap === undefined || meta.ds_type === undefined) return undefined;
    return { stream: decodeStream(name, jobId, meta), snap };
  }

  private reservations = 0;

  reserve(principal: string): string {
    const token = `reserved:${++this.reservations}`;
    this.mine.set(token, principal);
    return token;
  }

  release(reservation: string): void {
    this.mine.delete(reservation);
  }

  get open(): number {
    return this.mine.size;
  }

  async hold(jobIds: string[], keepMs: number): Promise<void> {
    const keep = this.keep(keepMs);
    if (keep < 0 || jobIds.length === 0) return;
    const { keys } = this.c;
    await Promise.all(
      jobIds.map(async (id) => {
        const shard = keys.shardOf(id);
        const pipe = this.c.conn.cmd.pipeline();
        for (const key of [keys.meta(id, shard), keys.tokens(id, shard), this.startsKey(id, shard)])
          pipe.pexpire(key, keep, 'GT');
        await pipe.exec();
      }),
    );
  }

  private startsKey(jobId: string, shard: number): string {
    const { keys } = this.c;
    return `${keys.prefix}{${keys.tags[shard]!}}:starts:${jobId}`;
  }

  async create(init: StreamInit, reservation?: string): Promise<{ created: boolean; jobId: string }> {
    const { keys } = this.c;
    // The job is drawn in its name's shard: one slot holds the name record and the whole stream.
    const shard = keys.shardOf(init.name);
    let jobId = uuidV4();
    while (keys.shardOf(jobId) !== shard) jobId = uuidV4();
    const meta: string[] = ['ds_type', init.contentType, 'ds_bytes', String(init.bytes), 'ds_forks', '0'];
    if (init.ttlSeconds !== undefined) meta.push('ds_ttl', String(init.ttlSeconds));
    if (init.expiresAt !== undefined) meta.push('ds_expires', init.expiresAt);
    if (init.closed) meta.push('ds_created_closed', '1');
    if (init.json) meta.push('ds_json', '1');
    const f = init.fork;
    if (f !== undefined) {
      meta.push('ds_fork_src', f.source, 'ds_fork_job', f.sourceJob, 'ds_fork_sub', String(f.subOffset));
      meta.push('ds_base', String(f.base), 'ds_segments', JSON.stringify(f.segments));
      if (f.offset !== undefined) meta.push('ds_fork_offset', f.offset);
    }
    const answer = await this.cmd.jrStreamCreate(
      ...this.keysOf(init.name, jobId),
      ...this.head(jobId, init.keepMs),
      init.owner ?? '',
      init.closed ? '1' : '',
      f?.base ?? 0,
      meta.length / 2,
      ...meta,
      ...init.chunks.flat(),
    );
    if (reservation !== undefined) this.mine.delete(reservation);
    if (answer[0] !== 'created') return { created: false, jobId: answer[1]! };
    if (!init.closed) this.mine.set(jobId, init.owner ?? '');
    return { created: true, jobId };
  }

  async append(stream: StoredStream, a: StreamAppend): Promise<StreamAppendResult> {
    const p = a.producer;
    const r = await this.cmd.jrStreamAppend(
      ...this.keysOf(stream.name, stream.jobId),
      ...this.head(stream.jobId, a.keepMs),
      a.bytes,
      a.maxBytes,
      a.json ? '1' : '',
      p?.id ?? '',
      p === undefined ? '' : String(p.epoch),
      p === undefined ? '' : String(p.seq),
      a.writerSeq ?? '',
      a.close ? '1' : '',
      ...a.chunks.flat(),
    );
    switch (r[0]) {
      case 'appended':
        return { status: 'appended', count: Number(r[1]) };
      case 'closed':
        return { status: 'closed', count: Number(r[1]), sameClose: r[2] === '1' };
      case 'full':
        return { status: 'full' };
      case 'gone':
        return { status: 'gone' };
      case 'dup':
        return { status: 'duplicate', lastSeq: Number(r[1]) };
      case 'stale':
        return { status: 'stale_epoch', currentEpoch: Number(r[1]) };
      case 'epoch_seq':
        return { status: 'invalid_epoch_seq' };
      case 'gap':
        // The last seq accepted, as stored: large ones are not rounded through Lua's numbers.
        return { status: 'sequence_gap', expected: Number(r[1]) + 1, received: Number(r[2]) };
      case 'seq_conflict':
        return { status: 'seq_conflict', last: r[1]! };
      default:
        return { status: 'missing' };
    }
  }

  async touch(stream: StoredStream, keepMs: number): Promise<void> {
    await this.cmd.jrStreamTouch(
      ...this.keysOf(stream.name, stream.jobId),
      ...this.head(stream.jobId, keepMs),
    );
  }

  async close(stream: StoredStream, touchedAt?: number): Promise<'closed' | 'touched' | 'missing'> {
    return (await this.end(stream, 'close', 0, Infinity, touchedAt)) as 'closed' | 'touched' | 'missing';
  }

  async remove(
    stream: StoredStream,
    touchedAt?: number,
  ): Promise<'removed' | 'soft' | 'touched' | 'missing'> {
    return (await this.end(stream, 'remove', 0, Infinity, touchedAt)) as
      'removed' | 'soft' | 'touched' | 'missing';
  }

  async forkRef(
    source: Pick<StoredStream, 'name' | 'jobId'>,
    delta: 1 | -1,
    keepMs: number,
  ): Promise<'ok' | 'removed' | 'gone' | 'missing'> {
    return (await this.end(source, 'unref', delta, keepMs)) as 'ok' | 'removed' | 'gone' | 'missing';
  }

  private end(
    stream: Pick<StoredStream, 'name' | 'jobId'>,
    mode: string,
    delta: number,
    keepMs: number,
    touchedAt?: number,
  ): Promise<string> {
    return this.cmd.jrStreamEnd(
      ...this.keysOf(stream.name, stream.jobId),
      ...this.head(stream.jobId, keepMs),
      mode,
      delta,
      touchedAt === undefined ? '' : String(touchedAt),
    );
  }

  openBy(principal: string): number {
    let n = 0;
    for (const p of this.mine.values()) if (p === principal) n++;
    return n;
  }

  /** Stops counting (the backend closes). */
  dispose(): void {
    this.ends.unsubscribe();
    this.mine.clear();
  }

  async batchStarts(stream: StoredStream): Promise<number[]> {
    const list = await this.c.conn.reads.lrange(this.keysOf(stream.name, stream.jobId)[3]!, 0, -1);
    return list.map(Number);
  }
}

/** A stream's metadata from its job hash. */
function decodeStream(name: string, jobId: string, m: Record<string, string>): StoredStream {
  const s: StoredStream = {
    name,
    jobId,
    contentType: m.ds_type!,
    touchedAt: Number(m.ds_touched ?? m.created_at),
    createdClosed: m.ds_created_closed === '1',
    bytes: Number(m.ds_bytes ?? 0),
    forks: Number(m.ds_forks ?? 0),
    softDeleted: m.ds_deleted === '1',
  };
  if (m.ds_ttl !== undefined) s.ttlSeconds = Number(m.ds_ttl);
  if (m.ds_expires !== undefined) s.expiresAt = m.ds_expires;
  if (m.ds_fork_job !== undefined) {
    s.fork = {
      source: m.ds_fork_src ?? '',
      sourceJob: m.ds_fork_job,
      subOffset: Number(m.ds_fork_sub ?? 0),
      base: Number(m.ds_base ?? 0),
      segments: segmentsOf(m.ds_segments),
    };
    if (m.ds_fork_offset !== undefined) s.fork.offset = m.ds_fork_offset;
  }
  return s;
}

/** A fork's segments, as stored (`[]` for a value this backend did not write). */
function segmentsOf(text: string | undefined): Array<[string, number]> {
  try {
    const v: unknown = JSON.parse(text ?? '[]');
    if (
      Array.isArray(v) &&
      v.every((x) => Array.isArray(x) && typeof x[0] === 'string' && typeof x[1] === 'number')
    )
      return v as Array<[string, number]>;
  } catch {
    // Not JSON: the fork reads as having no inherited chunks, as for any foreign value.
  }
  return [];
}
