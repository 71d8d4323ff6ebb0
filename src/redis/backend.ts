import { Observable, Subject, filter, map } from 'rxjs';
import type { BackendHost, BackendStats, RegistryBackend, StoredJob } from '../core/backend.js';
import { BackendError, JobRegistryError, messageOf } from '../core/errors.js';
import { isValidJobId, uuidV4 } from '../core/ids.js';
import { isTerminal } from '../core/states.js';
import type {
  JobProgress,
  JobSnapshot,
  JobState,
  JobStatus,
  RegistryEvent,
  TokenEvent,
} from '../core/types.js';
import { decodeEvent, isEnd, type StreamEvent } from './codec.js';
import { Connection } from './connection.js';
import { JobKeys } from './job-keys.js';
import { Keys } from './keys.js';
import { Leases } from './leases.js';
import { Repair } from './repair.js';
import { firstKept, indexedIds, readSnapshots } from './lookups.js';
import { resolveOptions, type RedisBackendOptions, type ResolvedOptions } from './options.js';
import { ReaderHolds } from './holds.js';
import { SharedProgress } from './progress.js';
import { Spread } from './spread.js';
import { ForeignEntries, Outages, closeWithin } from './outage.js';
import { remoteTokens, type ReaderContext } from './reader.js';
import { remoteCancel, remoteStatus, type RemoteContext } from './remote.js';
import { RedisStreamStore } from './streams.js';
import { Tailer } from './tailer.js';
import { Seen, Watchers } from './watchers.js';
import { Writer, type Ttls } from './writer.js';

// Jobs remembered as created, ended or removed, to drop a repeated event (a write resent after a
// dropped connection).
const SEEN_MEMORY = 10_000;
/** How long after an end's write failed to reach Redis it is written again (ms). */
const END_RETRY_MS = 250;

/**
 * A Redis Streams backend: every process that uses the same Redis (or Redis Cluster) and prefix sees
 * one registry.
 *
 * @example
 * const registry = new JobRegistry({ backend: redisBackend({ url: process.env.REDIS_URL }) });
 * await registry.ready(); // fails fast, naming the URL, when Redis cannot be reached
 * @throws InvalidArgumentError for a malformed option.
 */
export function redisBackend(options: RedisBackendOptions): RegistryBackend {
  return new RedisBackend(options);
}

class RedisBackend implements RegistryBackend {
  readonly name = 'redis';
  readonly shared = true;
  readonly events$: Observable<RegistryEvent>;
  private readonly owner = uuidV4();
  private readonly o: ResolvedOptions;
  private readonly keys: Keys;
  private readonly conn: Connection;
  private readonly spread: Spread;
  private readonly outages: Outages;
  private readonly foreign: ForeignEntries;
  private writer: Writer | undefined;
  private tailers: Tailer[] = [];
  private readonly tailerOf: Tailer[] = [];
  private leases: Leases | undefined;
  private repair!: Repair;
  private jobKeys!: JobKeys;
  private host: BackendHost | undefined;
  private started: Promise<void> | undefined;
  private closed = false;
  private readonly stream = new Subject<StreamEvent>();
  private readonly watchers = new Watchers();
  private readonly seen = new Seen(SEEN_MEMORY);
  /** Cancel requests being carried out here: the job's end event names the request. */
  private readonly requests = new Map<string, string>();
  /**
   * Jobs whose end is not stored yet: the cancel request behind it (written again, or restored, its
   * event still names it) and why the job's tokens were lost ('' when they were not).
   */
  private readonly unstored = new Map<string, { request: string; lost: string }>();
  private context: (ReaderContext & RemoteContext) | undefined;
  private holds: ReaderHolds | undefined;
  private readonly counts: SharedProgress;
  readonly progress$: Observable<JobProgress>;
  /** Durable Streams kept in Redis (see streams.ts), once a registry opened the backend. */
  streams: RedisStreamStore | undefined;

  constructor(options: RedisBackendOptions) {
    this.o = resolveOptions(options);
    this.keys = new Keys(this.o.prefix, this.o.shards);
    this.outages = new Outages(this.o.log);
    this.foreign = new ForeignEntries(this.o.log);
    // Connection names carry the prefix, so an operator can tell (and CLIENT KILL) one registry's connections.
    this.conn = new Connection(
      // A quarter of a lease at most between reconnect attempts: after an outage, this process renews
      // its lease before others may take it for dead (they wait a whole lease).
      {
        url: options.url,
        redis: options.redis,
        reconnectMaxMs: Math.min(2000, Math.max(50, this.o.leaseMs / 4)),
      },
      `jr:${this.o.prefix}:${this.owner}`,
      this.keys.slots,
      (e) => this.outages.fail('connection', `a connection to Redis failed`, e),
      () => this.outages.ok('connection'),
    );
    this.spread = new Spread(this.conn, this.keys);
    this.counts = new SharedProgress(this.o.progressMs, (id, count, at) => {
      const held = this.host?.describe(id);
      if (held !== undefined && !isTerminal(held.state)) this.writer!.progress(id, count, at);
    });
    this.progress$ = this.counts.progress$;
    this.events$ = this.stream.pipe(
      filter(
        (s): s is Extract<StreamEvent, { kind: 'event' }> =>
          s.kind === 'event' && s.origin !== this.owner && !(this.host?.holds(s.event.jobId) ?? false),
      ),
      map((s) => s.event),
    );
  }

  open(host: BackendHost): void {
    this.host = host;
    this.holds = new ReaderHolds(() => this.conn.cmd, this.keys, host.graceMs, this.outages);
    const retention = host.retentionMs === Infinity ? -1 : host.retentionMs;
    const liveTtl = Math.max(60_000, this.o.leaseMs * 12);
    // Shard keys (events, index, live hash) are refreshed on every write and by every sweep (each leaseMs / 4)
    // while any process runs; they outlive the last of them by retention plus two leases.
    const ttls: Ttls = {
      retention,
      live: liveTtl,
      shard: retention < 0 ? -1 : retention + 2 * this.o.leaseMs,
    };
    this.writer = new Writer(
      this.conn,
      this.keys,
      this.owner,
      this.o.maxPending,
      this.o.eventsMaxLen,
      host.replayLimit,
      ttls,
      this.outages,
      {
        missing: (id) => this.repair.lost(id),
        endedElsewhere: (id, state, error, priv) => this.repair.adopt(id, state, error, priv),
        tokenRefused: (id, first, last) => void this.repair.checkRefused(id, first, last),
        tokensLost: (ids, e) => {
          const why = `job-registry: tokens could not be written to Redis: ${messageOf(e)}`;
          for (const id of ids)
            // A job whose end was in the same batch is written again as failed, not as it ended here.
            if (!host.end(id, 'failed', why)) {
              const pending = this.unstored.get(id);
              if (pending !== undefined) pending.lost = why;
            }
        },
        claimAnswered: (id, key, reply) => this.jobKeys.answered(id, key, reply),
      },
    );
    this.jobKeys = new JobKeys({
      conn: this.conn,
      keys: this.keys,
      writer: this.writer,
      host,
      log: this.o.log,
      foreign: this.foreign,
      closed: () => this.closed,
      cancel: (id, reason) => this.cancel(id, reason),
    });
    this.repair = new Repair(
      this.conn,
      this.keys,
      this.writer,
      host,
      this.o.log,
      this.outages,
      () => this.closed,
      (id) => this.unstored.get(id)?.request ?? '',
    );
    this.streams = new RedisStreamStore({
      conn: this.conn,
      keys: this.keys,
      origin: `${this.owner}/streams`,
      eventsMaxLen: this.o.eventsMaxLen,
      shardTtl: ttls.shard,
      retentionMs: retention,
      findJob: (id) => this.findJob(id),
      events: this.stream,
    });
    this.leases = new Leases({
      conn: this.conn,
      keys: this.keys,
      owner: this.owner,
      leaseMs: this.o.leaseMs,
      liveTtl,
      shardTtl: ttls.shard,
      retentionMs: retention,
      outages: this.outages,
      host: () => this.host,
      watched: () => this.watchers.jobs(),
      vanished: (id) => this.watchers.vanish(id),
      lost: (id) => this.repair.lost(id),
      reap: (id, owner) => this.reap(id, owner),
    });
    this.started = this.start();
    // ready() hands the failure to the caller; later calls await `started` and get it too.
    this.started.catch((e: unknown) => this.outages.fail('start', 'the Redis backend could not start', e));
  }

  ready(): Promise<void> {
    return this.started ?? Promise.reject(new BackendError('redis backend was never opened by a registry'));
  }

  private async start(): Promise<void> {
    await this.conn.connect();
    if (this.closed) return;
    try {
      await this.leases!.start();
      this.tailers = this.conn.groups(this.o.shards).map(
        (shards, g) =>
          new Tailer({
            blocking: this.conn.duplicate(`reader${g}`),
            reads: this.conn.reads,
            events: shards.map((s) => this.keys.events(s)),
            shards,
            wakeKey: this.keys.wake(shards[0]!, this.owner),
            blockMs: this.o.blockMs,
            leaseMs: this.o.leaseMs,
            outages: this.outages,
            foreign: this.foreign,
            onEvents: (shard, entries) => this.onEvents(shard, entries),
          }),
      );
      this.tailers.forEach((t, g) => {
        for (const s of this.conn.groups(this.o.shards)[g]!) this.tailerOf[s] = t;
      });
      await Promise.all(this.tailers.map((t) => t.start()));
    } catch (e) {
      await this.close();
      throw new BackendError(`starting on Redis at ${this.conn.where} failed: ${messageOf(e)}`, e);
    }
  }

  // ---- writes ----

  jobCreated(job: StoredJob): void {
    if (job.key === undefined) this.writer!.created(job.id, job.createdAt, job.owner ?? '');
    else this.jobKeys.created(job, job.key);
  }

  idForJob(draw: () => string): string {
    return this.spread.idFor(draw);
  }

  idForKey(key: string, draw: () => string): string {
    return this.jobKeys.idFor(key, draw);
  }

  jobOfKey(key: string): Promise<string | undefined> {
    return this.guard('activeJob', () => this.jobKeys.holderOf(key));
  }

  tokenAppended(jobId: string, seq: number, token: unknown): void {
    this.writer!.token(jobId, seq, token);
  }

  stateChanged(
    jobId: string,
    _from: JobState,
    to: JobState,
    error: string | undefined,
    at: number,
    errorPrivate = false,
  ): Promise<void> | undefined {
    if (this.closed) return undefined;
    const count = isTerminal(to) ? (this.host?.describe(jobId)?.tokenCount ?? -1) : -1;
    const request = this.requests.get(jobId) ?? '';
    const sent = this.writer!.state(jobId, to, error ?? '', at, count, request, errorPrivate);
    if (sent === undefined) return undefined;
    this.unstored.set(jobId, { request, lost: '' });
    return this.untilStored(jobId, at, sent).finally(() => this.unstored.delete(jobId));
  }

  /**
   * An end whose write did not reach Redis (its batch failed; the writer logged it) is written again,
   * as this process holds it then, until Redis answers: the job's readers here learn the end only once
   * Redis has it, so no process reports an end the others never see.
   */
  private untilStored(jobId: string, at: number, sent: Promise<boolean>): Promise<void> {
    return sent.then((stored) => {
      if (stored || this.closed) return;
      return new Promise<void>((resolve) => setTimeout(resolve, END_RETRY_MS).unref()).then(() => {
        // Tokens of the job were in the batch that failed: the end Redis gets is `failed`, and so is
        // the one this process's readers learn (they have not been told an end yet).
        const pending = this.unstored.get(jobId);
        if (pending?.lost) this.host?.adoptEnd(jobId, 'failed', pending.lost);
        const now = this.host?.describe(jobId);
        if (now === undefined || this.closed || !isTerminal(now.state)) return;
        const again = this.writer!.state(
          jobId,
          now.state,
          now.error ?? '',
          at,
          now.tokenCount,
          pending?.request ?? '',
          now.errorPrivate === true,
        );
        return again === undefined ? undefined : this.untilStored(jobId, at, again);
      });
    });
  }

  jobRemoved(jobId: string, key?: string): void {
    if (this.closed) return;
    this.writer!.removed(jobId, Date.now(), key);
  }

  flush(): Promise<void> {
    return this.writer!.flush();
  }

  get wantsProgress(): boolean {
    return this.o.progressMs > 0;
  }

  progressed(jobId: string, tokenCount: number): void {
    if (!this.closed && this.o.progressMs > 0) this.counts.progressed(jobId, tokenCount);
  }

  stats(): BackendStats {
    return {
      errors: this.outages.failures,
      failing: this.outages.failing,
      pendingWrites: this.writer?.waiting ?? 0,
      lagMs: this.writer?.lastRoundTripMs ?? 0,
    };
  }

  isHeld(jobId: string): Promise<boolean> {
    return this.closed || this.holds === undefined ? Promise.resolve(false) : this.holds.isHeld(jobId);
  }

  holdForReader(jobId: string): () => void {
    return this.closed || this.holds === undefined ? () => undefined : this.holds.hold(jobId);
  }

  // ---- what the writer and the lease keeper found ----

  /** Ends a live job of a dead process as failed (a CAS: nothing happens if it ended meanwhile). */
  private async reap(jobId: string, owner: string): Promise<boolean> {
    if (owner === this.owner || (await this.conn.cmd.exists(this.keys.owner(owner))) === 1) return false;
    const error = `job-registry: the process running job '${jobId}' stopped renewing its lease (leaseMs ${this.o.leaseMs}); it probably died`;
    return this.endRemote(jobId, 'failed', error, '');
  }

  /** A CAS transition of a job held elsewhere, written by this process; true when it moved the job. */
  private async endRemote(
    jobId: string,
    to: 'failed' | 'cancelled',
    error: string,
    request: string,
  ): Promise<boolean> {
    const reply = (await this.conn.scripts.jrTransition(
      ...this.writer!.transitionArgs(jobId, to, error, Date.now(), -1, request, `${this.owner}/remote`),
    )) as [string];
    return reply[0] === 'moved';
  }

  // ---- events ----

  private onEvents(shard: number, entries: Array<[string, string[]]>): void {
    for (const [id, fields] of entries) {
      const s = decodeEvent(fields);
      if (s === undefined) {
        this.foreign.skip(this.keys.events(shard), 'a foreign entry (one this version cannot decode)', id);
        continue;
      }
      if (s.kind === 'cancel') {
        this.onCancelRequest(s.jobId, s.reason, s.request);
        continue;
      }
      if (s.kind === 'progress') {
        if (s.origin !== this.owner)
          for (const [id, count] of s.counts) this.counts.received(id, count, s.at);
        continue;
      }
      const ev = s.event;
      const mark =
        ev.type === 'stateChanged' ? (isTerminal(ev.to) ? `${ev.jobId}:end` : '') : `${ev.jobId}:${ev.type}`;
      if (mark !== '' && !this.seen.first(mark)) continue;
      // Another process ended a job this one runs (its lease check took this process for dead): take it.
      if (isEnd(ev) && !s.origin.startsWith(this.owner) && this.host?.holds(ev.jobId))
        this.repair.adopt(ev.jobId, ev.to, ev.error ?? '', ev.errorPrivate === true);
      if (ev.type === 'removed' && !(this.host?.holds(ev.jobId) ?? false)) this.watchers.vanish(ev.jobId);
      this.stream.next(s);
    }
  }

  private onCancelRequest(jobId: string, reason: string, request: string): void {
    const host = this.host;
    if (host === undefined || !host.holds(jobId)) return;
    this.requests.set(jobId, request);
    try {
      host.end(jobId, 'cancelled', reason || 'job was cancelled');
    } finally {
      this.requests.delete(jobId);
    }
  }

  // ---- reads of jobs held elsewhere ----

  // Redis errors reach callers as BackendError (HTTP 503), never as a bare ioredis error.
  private async guard<R>(what: string, run: () => Promise<R>): Promise<R> {
    try {
      await this.started;
      return await run();
    } catch (e) {
      if (e instanceof JobRegistryError) throw e;
      throw new BackendError(`${what} on Redis at ${this.conn.where} failed: ${messageOf(e)}`, e);
    }
  }

  findJob(jobId: string): Promise<JobSnapshot | undefined> {
    if (!isValidJobId(jobId)) return Promise.resolve(undefined);
    return this.guard('findJob', async () => (await this.snapshots([jobId]))[0]);
  }

  listJobs(): Promise<JobSnapshot[]> {
    return this.guard('listJobs', async () => {
      const { ids, foreign } = await indexedIds(this.conn, this.keys);
      for (const { key, entry } of foreign)
        this.foreign.skip(key, 'a foreign entry (not a job id)', entry.slice(0, 60));
      const snaps = await this.snapshots(ids);
      return snaps.filter((s): s is JobSnapshot => s !== undefined);
    });
  }

  /**
   * Snapshots of jobs read from Redis. A live job of a process whose lease is gone is ended as `failed`
   * first, so a reader or a dashboard never shows a dead process's job as running forever.
   */
  private async snapshots(ids: string[]): Promise<Array<JobSnapshot | undefined>> {
    const read = await readSnapshots(this.conn, this.keys, ids);
    const out: Array<JobSnapshot | undefined> = [];
    for (let i = 0; i < ids.length; i++) {
      const { snap, owner } = read[i]!;
      if (snap === 'corrupt') {
        this.foreign.skip(this.keys.meta(ids[i]!), 'a corrupt job hash', 'its state or times do not parse');
        out.push(undefined);
      } else if (
        snap !== undefined &&
        !isTerminal(snap.state) &&
        owner !== undefined &&
        !(this.host?.holds(snap.id) ?? false) &&
        this.leases!.confirmedDead(owner) &&
        (await this.reap(snap.id, owner))
      )
        out.push((await readSnapshots(this.conn, this.keys, [snap.id]))[0]!.snap as JobSnapshot | undefined);
      else out.push(snap);
    }
    return out;
  }

  firstKept(jobId: string): Promise<number | undefined> {
    if (!isValidJobId(jobId)) return Promise.resolve(undefined);
    return this.guard('firstKept', () => firstKept(this.conn, this.keys, jobId));
  }

  /**
   * Cancels a job held by another process by asking its owner (see remote.ts). Resolves `true` when this
   * request moved the job.
   */
  cancel(jobId: string, reason: string): Promise<boolean | undefined> {
    if (!isValidJobId(jobId)) return Promise.resolve(undefined);
    return this.guard('cancel', () => remoteCancel(this.remote(), jobId, reason));
  }

  tokens$(jobId: string, after: number | undefined): Observable<TokenEvent<unknown>> {
    return remoteTokens(this.remote(), jobId, after);
  }

  state$(jobId: string): Observable<JobStatus> {
    return remoteStatus(this.remote(), jobId);
  }

  /** What the readers, cancel and status of jobs held elsewhere use (see reader.ts, remote.ts). */
  private remote(): ReaderContext & RemoteContext {
    return (this.context ??= {
      started: this.started ?? Promise.reject(new BackendError('redis backend was never opened')),
      reads: this.conn.reads,
      conn: this.conn,
      keys: this.keys,
      log: this.o.log,
      leaseMs: this.o.leaseMs,
      stream: this.stream,
      writer: this.writer!,
      tailer: (shard) => this.tailerOf[shard]!,
      watch: (id, onVanish) => this.watchers.watch(id, onVanish),
      firstKept: (id) => this.firstKept(id),
      endRemote: (id, to, error, request) => this.endRemote(id, to, error, request),
      findJob: (id) => this.findJob(id),
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Let a start still in flight finish (or fail) first, so it cannot arm timers after the close.
    const starting = this.started;
    this.closed = true;
    this.streams?.dispose();
    this.leases?.close();
    this.holds?.close();
    this.counts.close();
    // Every wait below is bounded: a Redis that does not answer (or a connection in the middle of a
    // reconnect) must not keep dispose() (and the process) from ending.
    const within = (work: Promise<unknown>, what: string): Promise<void> =>
      closeWithin(this.outages, Math.max(this.o.blockMs, this.o.leaseMs), work, what);
    if (starting !== undefined) await within(starting.then(ok, ok), 'the start did not settle');
    try {
      await within(this.writer?.flush() ?? Promise.resolve(), 'Redis did not take the last writes');
    } catch (e) {
      this.outages.fail('close', 'the last writes before close failed', e);
    }
    this.writer?.close();
    this.stream.complete();
    await within(Promise.all(this.tailers.map((t) => t.close())), 'the blocking reads did not stop');
    try {
      if (this.conn.cmd.status === 'ready')
        await within(this.conn.cmd.del(this.keys.owner(this.owner)), 'removing the lease got no answer');
    } catch (e) {
      this.outages.fail('close', 'removing the lease failed; it expires by itself', e);
    }
    await this.conn.close();
  }
}

function ok(): void {
  // close() waits for start to settle either way; a start failure was reported by ready().
}
