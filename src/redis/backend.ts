import { DateTime } from 'luxon';
import { Observable, Subject, filter, map } from 'rxjs';
import { Redis, type ChainableCommander, type RedisOptions } from 'ioredis';
import { v4 as uuidv4 } from 'uuid';
import type { BackendHost, RegistryBackend, StoredJob } from '../core/backend.js';
import {
  BackendError,
  JobRegistryError,
  InvalidArgumentError,
  JobCancelledError,
  JobFailedError,
  JobNotFoundError,
  ReplayExpiredError,
  messageOf,
} from '../core/errors.js';
import { isValidJobId } from '../core/ids.js';
import { isJobState, isTerminal } from '../core/states.js';
import type { JobSnapshot, JobState, JobStatus, RegistryEvent, TokenEvent } from '../core/types.js';
import { compareIds, isValidPrefix, keysFor, seqOf, tokenId, type Keys } from './keys.js';
import { TRANSITION } from './scripts.js';

/** Where warnings about foreign or corrupt entries and failed writes go. Defaults to `console`. */
export interface BackendLogger {
  warn(message: string): void;
  error(message: string): void;
}

/** Options of {@link redisBackend}. Give `url` or `redis`. */
export interface RedisBackendOptions {
  /** A Redis URL such as `redis://127.0.0.1:6379`. */
  url?: string;
  /** An ioredis client to use for commands (the backend duplicates it for its one blocking reader; you close it). */
  redis?: Redis;
  /** Prefix of every key. Defaults to `'jr:'`. */
  prefix?: string;
  /** A process that stops renewing its lease this long is taken for dead, and its live jobs end as `failed`. Defaults to 10 s. */
  leaseMs?: number;
  /** How long the blocking reader waits per `XREAD`. Defaults to 5 s. */
  blockMs?: number;
  /** Registry events kept in the events stream (approximate trim). Defaults to 10,000. */
  eventsMaxLen?: number;
  /** Commands waiting to reach Redis (e.g. while it is down) past which writes throw `BackendError`. Defaults to 100,000. */
  maxPendingWrites?: number;
  logger?: BackendLogger;
}

type Pipeline = ChainableCommander;
type TransitionCommand = (...args: (string | number)[]) => Promise<string | null> | Pipeline;

interface RemoteReader {
  jobId: string;
  lastId: string;
  deliver(entryId: string, fields: string[]): boolean; // true when the reader has ended
  /** The backend closed (the registry was disposed): complete, as dispose() completes every stream. */
  close(): void;
}

interface Tail {
  key: string;
  jobId: string;
  cursor: string;
  readers: Set<RemoteReader>;
}

const TERMINAL_FIELD = 'end';
// Jobs remembered as ended, to drop a second terminal event for the same job.
const ENDED_MEMORY = 10_000;

/**
 * A Redis Streams backend: every process that uses the same Redis and prefix sees one registry.
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
  private readonly owner = uuidv4();
  private readonly keys: Keys;
  private readonly where: string;
  private readonly cmd: Redis;
  private readonly reader: Redis;
  private readonly ownsCmd: boolean;
  private readonly leaseMs: number;
  private readonly blockMs: number;
  private readonly eventsMaxLen: number;
  private readonly maxPending: number;
  private readonly log: BackendLogger;
  private host: BackendHost | undefined;
  private started: Promise<void> | undefined;
  private closed = false;
  private pipe: Pipeline | undefined;
  private piped = 0;
  private counts = new Map<string, number>();
  private conditional: Array<{ index: number; jobId: string; at: number; fields: string[] }> = [];
  private readonly conditionalOf = new Map<string, Promise<void>>();
  private lastTokensJob = '';
  private lastTokensKey = '';
  private inflight: Promise<void> = Promise.resolve();
  private pending = 0;
  private readonly allEvents = new Subject<{ event: RegistryEvent; origin: string }>();
  private readonly tails = new Map<string, Tail>();
  private readonly watched = new Map<string, number>();
  private readonly ended = new Set<string>();
  private eventsCursor = '$';
  private readerId: string | undefined;
  private readonly readerName: string;
  private wakeWanted = false;
  private blocked = false;
  private loopDone: Promise<void> | undefined;
  private leaseTimer: ReturnType<typeof setInterval> | undefined;
  private checkTimer: ReturnType<typeof setInterval> | undefined;

  constructor(options: RedisBackendOptions) {
    if (options === null || typeof options !== 'object')
      throw new InvalidArgumentError('redisBackend needs { url } or { redis }');
    const prefix = options.prefix ?? 'jr:';
    if (!isValidPrefix(prefix))
      throw new InvalidArgumentError(
        `redis prefix must be up to 100 letters, digits, ':', '.', '_' or '-', got ${JSON.stringify(prefix)}`,
      );
    this.keys = keysFor(prefix);
    this.leaseMs = positive(options.leaseMs ?? 10_000, 'leaseMs');
    this.blockMs = positive(options.blockMs ?? 5_000, 'blockMs');
    this.eventsMaxLen = positive(options.eventsMaxLen ?? 10_000, 'eventsMaxLen');
    this.maxPending = positive(options.maxPendingWrites ?? 100_000, 'maxPendingWrites');
    this.log = options.logger ?? { warn: (m) => console.warn(m), error: (m) => console.error(m) };
    // Connection names carry the prefix, so an operator can tell (and CLIENT KILL) one registry's connections.
    const base: RedisOptions = {
      lazyConnect: true,
      connectTimeout: 5_000,
      connectionName: `jr:${prefix}:${this.owner}`,
    };
    if (options.redis !== undefined) {
      this.cmd = options.redis;
      this.ownsCmd = false;
      this.where = `${options.redis.options.host ?? '?'}:${options.redis.options.port ?? '?'}`;
    } else if (typeof options.url === 'string' && options.url !== '') {
      this.cmd = new Redis(options.url, base);
      this.ownsCmd = true;
      this.where = options.url.replace(/\/\/[^@/]*@/, '//***@');
    } else throw new InvalidArgumentError('redisBackend needs { url } or { redis }');
    this.readerName = `jr-reader:${prefix}:${this.owner}`;
    this.reader = this.cmd.duplicate({
      lazyConnect: true,
      maxRetriesPerRequest: null,
      connectionName: this.readerName,
    });
    this.cmd.defineCommand('jrTransition', { numberOfKeys: 2, lua: TRANSITION });
    this.cmd.on('error', () => undefined); // reported through failed commands and ready()
    this.reader.on('error', () => undefined);
    this.reader.on('ready', () => (this.readerId = undefined));
    this.events$ = this.allEvents.pipe(
      filter(({ event, origin }) => origin !== this.owner && !(this.host?.holds(event.jobId) ?? false)),
      map(({ event }) => event),
    );
  }

  open(host: BackendHost): void {
    this.host = host;
    this.started = this.start();
    this.started.catch(() => undefined);
  }

  ready(): Promise<void> {
    return this.started ?? Promise.reject(new BackendError('redis backend was never opened by a registry'));
  }

  private async start(): Promise<void> {
    try {
      if (this.cmd.status === 'wait') await this.cmd.connect();
      await this.reader.connect();
      await this.cmd.ping();
    } catch (e) {
      this.cmd.disconnect();
      this.reader.disconnect();
      this.closed = true;
      throw new BackendError(`cannot reach Redis at ${this.where}: ${messageOf(e)}`, e);
    }
    if (this.closed) return;
    await this.renewLease();
    const last = await this.cmd.xrevrange(this.keys.events, '+', '-', 'COUNT', 1);
    this.eventsCursor = last.length > 0 ? last[0]![0] : '0-0';
    this.leaseTimer = setInterval(
      () => void this.renewLease().catch(() => undefined),
      Math.max(50, this.leaseMs / 3),
    );
    this.leaseTimer.unref();
    this.checkTimer = setInterval(
      () => void this.checkLeases().catch(() => undefined),
      Math.max(50, this.leaseMs / 2),
    );
    this.checkTimer.unref();
    this.loopDone = this.loop();
  }

  // ---- writes: batched per tick into one pipeline ----

  jobCreated(job: StoredJob): void {
    const at = String(job.createdAt);
    this.pipeline().hset(
      this.keys.meta(job.id),
      'state',
      'queued',
      'created_at',
      at,
      'updated_at',
      at,
      'token_count',
      0,
      'owner',
      this.owner,
    );
    this.pipeline().zadd(this.keys.jobs, job.createdAt, job.id);
    this.queueEvent('created', job.id, job.createdAt, []);
  }

  tokenAppended(jobId: string, seq: number, token: unknown): void {
    const limit = this.host?.replayLimit ?? Infinity;
    // String tokens (the usual LLM token) are stored raw under `s`; anything else as JSON under `t`.
    const field = typeof token === 'string' ? 's' : 't';
    const data = typeof token === 'string' ? token : (JSON.stringify(token) ?? 'null');
    if (jobId !== this.lastTokensJob) {
      this.lastTokensJob = jobId;
      this.lastTokensKey = this.keys.tokens(jobId);
    }
    const pipe = this.pipeline();
    if (limit === Infinity) pipe.xadd(this.lastTokensKey, tokenId(seq), field, data);
    else pipe.xadd(this.lastTokensKey, 'MAXLEN', limit, tokenId(seq), field, data);
    this.counts.set(jobId, seq + 1);
  }

  stateChanged(jobId: string, from: JobState, to: JobState, error: string | undefined, at: number): void {
    const count = this.counts.get(jobId) ?? -1;
    this.counts.delete(jobId);
    this.transitionIn(this.pipeline(), jobId, to, error ?? '', at, count);
    // The event goes out only if the CAS moved the job: a remote cancel that won the race has already
    // written its own, and the stream must carry exactly the transitions Redis kept.
    this.conditional.push({
      index: this.piped - 1,
      jobId,
      at,
      fields: ['from', from, 'to', to, ...(error !== undefined ? ['error', error] : [])],
    });
  }

  jobRemoved(jobId: string): void {
    this.counts.delete(jobId);
    this.pipeline().del(this.keys.meta(jobId), this.keys.tokens(jobId));
    this.pipeline().zrem(this.keys.jobs, jobId);
    const at = Date.now();
    // A state event still waiting for its CAS result goes first.
    const before = this.conditionalOf.get(jobId);
    if (before === undefined) this.queueEvent('removed', jobId, at, []);
    else void before.then(() => !this.closed && this.queueEvent('removed', jobId, at, []));
  }

  flush(): Promise<void> {
    this.exec();
    return this.inflight;
  }

  // `remote` marks a write this process made to a job it does not hold (cancel, lease check): its own
  // registry has not published that event, so it must come back through the stream.
  private queueEvent(type: string, jobId: string, at: number, extra: string[], remote = false): void {
    this.addEvent(this.pipeline(), type, jobId, at, extra, remote);
  }

  private addEvent(
    pipe: Pipeline,
    type: string,
    jobId: string,
    at: number,
    extra: string[],
    remote: boolean,
  ): void {
    const origin = remote ? `${this.owner}/remote` : this.owner;
    pipe.xadd(
      this.keys.events,
      'MAXLEN',
      '~',
      this.eventsMaxLen,
      '*',
      'type',
      type,
      'job',
      jobId,
      'at',
      String(at),
      'origin',
      origin,
      ...extra,
    );
  }

  // Writes go straight into the tick's pipeline (no intermediate arrays); it is sent at the end of the tick.
  private pipeline(): Pipeline {
    if (this.closed) throw new BackendError('redis backend is closed; the write was refused');
    if (this.pending >= this.maxPending)
      throw new BackendError(
        `${this.pending} writes are waiting for Redis at ${this.where} (maxPendingWrites); refusing more until it is back`,
      );
    this.pending++;
    this.piped++;
    if (this.pipe === undefined) {
      this.pipe = this.cmd.pipeline();
      queueMicrotask(() => this.exec());
    }
    return this.pipe;
  }

  private exec(): void {
    const pipe = this.pipe;
    if (pipe === undefined) return;
    for (const [jobId, count] of this.counts) pipe.hset(this.keys.meta(jobId), 'token_count', count);
    const size = this.piped + this.counts.size;
    this.pending += this.counts.size;
    this.counts = new Map();
    this.pipe = undefined;
    this.piped = 0;
    const conditional = this.conditional;
    this.conditional = [];
    const run = pipe.exec().then(
      async (results) => {
        for (const [err] of results ?? []) {
          if (err !== null && !/equal or smaller/.test(err.message))
            this.log.error(`job-registry: a Redis write failed: ${err.message}`);
        }
        if (conditional.length === 0) return;
        const events = this.cmd.pipeline();
        for (const c of conditional) {
          const [err, moved] = results?.[c.index] ?? [null, null];
          if (err === null && moved !== null)
            this.addEvent(events, 'stateChanged', c.jobId, c.at, c.fields, false);
        }
        await events.exec();
      },
      (e: unknown) => this.log.error(`job-registry: ${size} Redis writes failed: ${messageOf(e)}`),
    );
    if (conditional.length > 0) {
      const done = run.then(() => undefined);
      for (const c of conditional) this.conditionalOf.set(c.jobId, done);
      void done.then(() => {
        for (const c of conditional)
          if (this.conditionalOf.get(c.jobId) === done) this.conditionalOf.delete(c.jobId);
      });
    }
    this.inflight = Promise.all([this.inflight, run.finally(() => (this.pending -= size))]).then(
      () => undefined,
    );
  }

  // ---- reads of jobs held elsewhere ----

  // Redis errors reach callers as BackendError (HTTP 503), never as a bare ioredis error.
  private async guard<R>(what: string, run: () => Promise<R>): Promise<R> {
    try {
      return await run();
    } catch (e) {
      if (e instanceof JobRegistryError) throw e;
      throw new BackendError(`${what} on Redis at ${this.where} failed: ${messageOf(e)}`, e);
    }
  }

  findJob(jobId: string): Promise<JobSnapshot | undefined> {
    return this.guard('findJob', () => this.findJobNow(jobId));
  }

  private async findJobNow(jobId: string): Promise<JobSnapshot | undefined> {
    if (!isValidJobId(jobId)) return undefined;
    await this.started;
    const meta = await this.cmd.hgetall(this.keys.meta(jobId));
    return this.snapshotOf(jobId, meta);
  }

  listJobs(): Promise<JobSnapshot[]> {
    return this.guard('listJobs', () => this.listJobsNow());
  }

  private async listJobsNow(): Promise<JobSnapshot[]> {
    await this.started;
    const ids = await this.cmd.zrange(this.keys.jobs, 0, -1);
    if (ids.length === 0) return [];
    const pipe = this.cmd.pipeline();
    for (const id of ids) pipe.hgetall(this.keys.meta(isValidJobId(id) ? id : '\u0000invalid'));
    const results = (await pipe.exec()) ?? [];
    const gone: string[] = [];
    const found: Array<Promise<JobSnapshot | undefined>> = [];
    ids.forEach((id, i) => {
      const meta = results[i]?.[1] as Record<string, string> | undefined;
      if (!isValidJobId(id)) {
        this.log.warn(
          `job-registry: skipping a foreign entry '${String(id).slice(0, 60)}' in ${this.keys.jobs}`,
        );
        return;
      }
      if (meta === undefined || Object.keys(meta).length === 0) return void gone.push(id);
      found.push(this.snapshotOf(id, meta));
    });
    if (gone.length > 0) await this.cmd.zrem(this.keys.jobs, ...gone);
    return (await Promise.all(found)).filter((snap): snap is JobSnapshot => snap !== undefined);
  }

  /**
   * The snapshot of a job hash just read. A live job of a process whose lease is gone is ended as
   * `failed` first, so a reader or a dashboard never shows a dead process's job as running forever.
   */
  private async snapshotOf(jobId: string, meta: Record<string, string>): Promise<JobSnapshot | undefined> {
    const snap = this.parseMeta(jobId, meta);
    if (snap === undefined || isTerminal(snap.state) || (this.host?.holds(jobId) ?? false)) return snap;
    if (!(await this.reapIfOrphaned(jobId, meta.owner))) return snap;
    return this.parseMeta(jobId, await this.cmd.hgetall(this.keys.meta(jobId)));
  }

  firstKept(jobId: string): Promise<number | undefined> {
    return this.guard('firstKept', () => this.firstKeptNow(jobId));
  }

  private async firstKeptNow(jobId: string): Promise<number | undefined> {
    if (!isValidJobId(jobId)) return undefined;
    const first = await this.cmd.xrange(this.keys.tokens(jobId), '-', '+', 'COUNT', 1);
    const seq = first.length > 0 ? seqOf(first[0]![0]) : undefined;
    if (seq !== undefined) return seq;
    // No token kept (none yet, or only the end entry): the next seq is the first one a reader can get.
    const count = await this.cmd.hget(this.keys.meta(jobId), 'token_count');
    return count === null ? undefined : Number(count);
  }

  cancel(jobId: string, reason: string): Promise<boolean | undefined> {
    return this.guard('cancel', () => this.cancelNow(jobId, reason));
  }

  private async cancelNow(jobId: string, reason: string): Promise<boolean | undefined> {
    if (!isValidJobId(jobId)) return undefined;
    await this.started;
    const from = await this.endRemote(jobId, 'cancelled', reason);
    if (from === null) return (await this.cmd.exists(this.keys.meta(jobId))) === 1 ? false : undefined;
    this.queueEvent(
      'stateChanged',
      jobId,
      Date.now(),
      ['from', from, 'to', 'cancelled', 'error', reason],
      true,
    );
    await this.flush();
    return true;
  }

  tokens$(jobId: string, after: number | undefined): Observable<TokenEvent<unknown>> {
    return new Observable<TokenEvent<unknown>>((sub) => {
      let active = true;
      let lastSeq = after ?? -1;
      const key = this.keys.tokens(jobId);
      const reader: RemoteReader = {
        jobId,
        lastId: after === undefined ? '0-0' : tokenId(after),
        deliver: (entryId, fields) => {
          if (!active) return false;
          // The hot path: a token entry, `s` (a string token, stored raw) or `t` (JSON), compared by seq.
          if (fields.length === 2 && (fields[0] === 's' || fields[0] === 't')) {
            const seq = seqOf(entryId);
            if (seq !== undefined) {
              if (seq <= lastSeq) return false;
              lastSeq = seq;
              reader.lastId = entryId;
              let token: unknown = fields[1];
              if (fields[0] === 't') {
                try {
                  token = JSON.parse(fields[1]!);
                } catch {
                  this.log.warn(`job-registry: skipping a corrupt token ${entryId} in ${key}`);
                  return false;
                }
              }
              sub.next({ seq, token });
              return false;
            }
          }
          if (compareIds(entryId, reader.lastId) <= 0) return false;
          reader.lastId = entryId;
          const f = fieldMap(fields);
          if (f[TERMINAL_FIELD] !== undefined) {
            active = false;
            const state = f[TERMINAL_FIELD];
            if (state === 'completed') sub.complete();
            else if (state === 'cancelled')
              sub.error(new JobCancelledError(jobId, f.error || 'job was cancelled'));
            else sub.error(new JobFailedError(jobId, f.error || 'job failed'));
            return true;
          }
          this.log.warn(`job-registry: skipping a foreign entry ${entryId} in ${key}`);
          return false;
        },
        close: () => {
          if (!active) return;
          active = false;
          sub.complete();
        },
      };
      const run = async (): Promise<void> => {
        await this.started;
        const exists = await this.cmd.exists(this.keys.meta(jobId));
        if (exists === 0)
          throw new JobNotFoundError(jobId, 'not in this process nor in Redis; it may have expired');
        if (after !== undefined) {
          const first = await this.firstKept(jobId);
          if (first !== undefined && after + 1 < first) throw new ReplayExpiredError(jobId, after, first);
        }
        // Replay in pages, then join the shared tail; catch up again if the tail moved meanwhile.
        for (;;) {
          const page = await this.cmd.xrange(key, '(' + reader.lastId, '+', 'COUNT', 1000);
          if (!active) return;
          for (const [id, fields] of page) if (reader.deliver(id, fields)) return;
          if (page.length === 1000) continue;
          const tail = this.tails.get(key);
          if (tail === undefined) {
            this.tails.set(key, { key, jobId, cursor: reader.lastId, readers: new Set([reader]) });
            this.watch(jobId, 1);
            this.wake();
            return;
          }
          if (compareIds(reader.lastId, tail.cursor) >= 0) {
            tail.readers.add(reader);
            return;
          }
        }
      };
      run().catch((e: unknown) => {
        if (active) {
          active = false;
          sub.error(
            e instanceof JobRegistryError
              ? e
              : new BackendError(`reading ${jobId} from Redis failed: ${messageOf(e)}`, e),
          );
        }
      });
      return () => {
        active = false;
        const tail = this.tails.get(key);
        if (tail !== undefined && tail.readers.delete(reader) && tail.readers.size === 0) {
          this.tails.delete(key);
          this.watch(jobId, -1);
        }
      };
    });
  }

  state$(jobId: string): Observable<JobStatus> {
    return new Observable<JobStatus>((sub) => {
      let last: JobState | undefined;
      const emit = (status: JobStatus): void => {
        if (last !== undefined && (last === status.state || isTerminal(last))) return;
        last = status.state;
        sub.next(status);
        if (isTerminal(status.state)) sub.complete();
      };
      const events = this.allEvents.subscribe({
        next: ({ event }) => {
          if (event.jobId !== jobId) return;
          if (event.type === 'stateChanged')
            emit({
              state: event.to,
              at: event.at,
              ...(event.error !== undefined ? { error: event.error } : {}),
            });
          else if (event.type === 'removed') sub.complete();
        },
        complete: () => sub.complete(),
      });
      this.watch(jobId, 1);
      this.findJob(jobId).then(
        (snap) => {
          if (snap === undefined)
            sub.error(new JobNotFoundError(jobId, 'not in this process nor in Redis; it may have expired'));
          else if (last === undefined)
            emit({
              state: snap.state,
              at: snap.updatedAt,
              ...(snap.error !== undefined ? { error: snap.error } : {}),
            });
        },
        (e: unknown) => sub.error(e), // findJob fails with BackendError already
      );
      return () => {
        events.unsubscribe();
        this.watch(jobId, -1);
      };
    });
  }

  // ---- the one blocking reader: the events stream and every tailed token stream ----

  private async loop(): Promise<void> {
    let backoff = 50;
    while (!this.closed) {
      const tails = [...this.tails.values()];
      const keys = [this.keys.events, ...tails.map((t) => t.key)];
      const ids = [this.eventsCursor, ...tails.map((t) => t.cursor)];
      this.wakeWanted = false;
      let res: Array<[string, Array<[string, string[]]>]> | null;
      try {
        this.blocked = true;
        res = (await this.reader.xread(
          'COUNT',
          1000,
          'BLOCK',
          this.blockMs,
          'STREAMS',
          ...keys,
          ...ids,
        )) as typeof res;
        backoff = 50;
      } catch (e) {
        if (this.closed) break;
        if (!/UNBLOCKED/.test(messageOf(e))) {
          await new Promise((r) => setTimeout(r, backoff).unref());
          backoff = Math.min(backoff * 2, 2000);
        }
        continue;
      } finally {
        this.blocked = false;
      }
      if (res === null) continue;
      for (const [key, entries] of res) {
        if (key === this.keys.events) this.onEvents(entries);
        else {
          const tail = this.tails.get(key);
          if (tail === undefined) continue;
          let ended: RemoteReader[] | undefined;
          for (const [id, fields] of entries) {
            tail.cursor = id;
            for (const reader of tail.readers) if (reader.deliver(id, fields)) (ended ??= []).push(reader);
          }
          if (ended !== undefined) for (const reader of ended) tail.readers.delete(reader);
          if (tail.readers.size === 0 && this.tails.get(key) === tail) {
            this.tails.delete(key);
            this.watch(tail.jobId, -1);
          }
        }
      }
    }
  }

  private onEvents(entries: Array<[string, string[]]>): void {
    for (const [id, fields] of entries) {
      this.eventsCursor = id;
      const f = fieldMap(fields);
      const at = Number(f.at);
      if (!isValidJobId(f.job) || !Number.isFinite(at) || f.origin === undefined) {
        this.log.warn(`job-registry: skipping a foreign entry ${id} in ${this.keys.events}`);
        continue;
      }
      const when = DateTime.fromMillis(at, { zone: 'utc' });
      let event: RegistryEvent;
      if (f.type === 'created' || f.type === 'removed') event = { type: f.type, jobId: f.job, at: when };
      else if (f.type === 'stateChanged' && isJobState(f.from) && isJobState(f.to)) {
        event = { type: 'stateChanged', jobId: f.job, from: f.from, to: f.to, at: when };
        if (f.error !== undefined) event.error = f.error;
      } else {
        this.log.warn(`job-registry: skipping a corrupt event ${id} in ${this.keys.events}`);
        continue;
      }
      // A job ends once. Every end is written after its CAS won, but a write resent after a dropped
      // connection can land twice: only the first is passed on.
      if (event.type === 'stateChanged' && isTerminal(event.to)) {
        if (this.ended.has(event.jobId)) continue;
        this.ended.add(event.jobId);
        if (this.ended.size > ENDED_MEMORY) this.ended.delete(this.ended.values().next().value!);
      }
      // Another process (or a lease check) ended a job this process runs: stop it here.
      if (
        f.origin !== this.owner &&
        event.type === 'stateChanged' &&
        isTerminal(event.to) &&
        this.host?.holds(event.jobId)
      ) {
        const to = event.to === 'cancelled' ? 'cancelled' : 'failed';
        this.host.endLocal(event.jobId, to, event.error ?? to);
      }
      this.allEvents.next({ event, origin: f.origin });
    }
  }

  // A new tail must join the XREAD now, not after the current BLOCK times out: unblock the reader
  // (by client id, looked up by its connection name), and again shortly if the XREAD was still in flight.
  private wake(tries = 5): void {
    if (this.closed) return;
    this.wakeWanted = true;
    const attempt = async (): Promise<void> => {
      if (this.readerId === undefined) {
        const list = String(await this.cmd.call('CLIENT', 'LIST'));
        const line = list.split('\n').find((l) => l.includes(` name=${this.readerName} `));
        this.readerId = line === undefined ? undefined : /(?:^|\s)id=(\d+)/.exec(line)?.[1];
      }
      if (this.readerId !== undefined && this.blocked)
        await this.cmd.call('CLIENT', 'UNBLOCK', this.readerId, 'TIMEOUT');
    };
    void attempt().catch(() => undefined);
    if (tries > 1)
      setTimeout(() => {
        if (this.wakeWanted) this.wake(tries - 1);
      }, 20).unref();
  }

  // ---- leases ----

  private async renewLease(): Promise<void> {
    if (this.closed) return;
    await this.cmd.set(this.keys.owner(this.owner), '1', 'PX', this.leaseMs);
  }

  private watch(jobId: string, delta: number): void {
    const n = (this.watched.get(jobId) ?? 0) + delta;
    if (n <= 0) this.watched.delete(jobId);
    else this.watched.set(jobId, n);
  }

  private async checkLeases(): Promise<void> {
    if (this.closed || this.watched.size === 0) return;
    const ids = [...this.watched.keys()].filter((id) => !(this.host?.holds(id) ?? false));
    if (ids.length === 0) return;
    const pipe = this.cmd.pipeline();
    for (const id of ids) pipe.hmget(this.keys.meta(id), 'state', 'owner');
    const results = (await pipe.exec()) ?? [];
    await Promise.all(
      ids.map(async (id, i) => {
        const [state, owner] = (results[i]?.[1] as [string | null, string | null] | undefined) ?? [
          null,
          null,
        ];
        if (state !== null && isJobState(state) && !isTerminal(state))
          await this.reapIfOrphaned(id, owner ?? undefined);
      }),
    );
  }

  private ttl(): number {
    return this.host === undefined || this.host.retentionMs === Infinity ? -1 : this.host.retentionMs;
  }

  /** Queues the CAS transition script (see scripts.ts) on a pipeline or a plain connection. */
  private transitionIn(
    on: Pipeline | Redis,
    jobId: string,
    to: JobState,
    error: string,
    at: number,
    count: number,
  ): ReturnType<TransitionCommand> {
    return (on as unknown as { jrTransition: TransitionCommand }).jrTransition(
      this.keys.meta(jobId),
      this.keys.tokens(jobId),
      to,
      error,
      String(at),
      this.ttl(),
      count,
    );
  }

  /** Ends a job held by another process, in Redis (a CAS); resolves with its previous state, or null. */
  private endRemote(jobId: string, state: 'cancelled' | 'failed', error: string): Promise<string | null> {
    return this.transitionIn(this.cmd, jobId, state, error, Date.now(), -1) as Promise<string | null>;
  }

  /** Ends as `failed` a live job whose owning process no longer renews its lease. True when it did. */
  private async reapIfOrphaned(jobId: string, owner: string | undefined): Promise<boolean> {
    if (owner === undefined || owner === this.owner) return false;
    if ((await this.cmd.exists(this.keys.owner(owner))) === 1) return false;
    const error = `job-registry: the process running job '${jobId}' stopped renewing its lease (leaseMs ${this.leaseMs}); it probably died`;
    const from = await this.endRemote(jobId, 'failed', error);
    if (from === null) return false;
    this.queueEvent('stateChanged', jobId, Date.now(), ['from', from, 'to', 'failed', 'error', error], true);
    await this.flush();
    return true;
  }

  private parseMeta(jobId: string, meta: Record<string, string>): JobSnapshot | undefined {
    if (Object.keys(meta).length === 0) return undefined;
    const created = Number(meta.created_at);
    const updated = Number(meta.updated_at);
    const count = Number(meta.token_count ?? 0);
    if (
      !isJobState(meta.state) ||
      !Number.isFinite(created) ||
      !Number.isFinite(updated) ||
      !Number.isFinite(count)
    ) {
      this.log.warn(`job-registry: skipping a corrupt job hash ${this.keys.meta(jobId)}`);
      return undefined;
    }
    const snap: JobSnapshot = {
      id: jobId,
      state: meta.state,
      createdAt: DateTime.fromMillis(created, { zone: 'utc' }),
      updatedAt: DateTime.fromMillis(updated, { zone: 'utc' }),
      tokenCount: count,
    };
    if (meta.error !== undefined && meta.error !== '') snap.error = meta.error;
    return snap;
  }

  async close(): Promise<void> {
    // Let a start still in flight finish (or fail) first, so it cannot arm timers after the close.
    await this.started?.catch(() => undefined);
    if (this.closed && this.loopDone === undefined) return;
    try {
      await this.flush();
    } catch {
      // reported by exec
    }
    this.closed = true;
    if (this.leaseTimer !== undefined) clearInterval(this.leaseTimer);
    if (this.checkTimer !== undefined) clearInterval(this.checkTimer);
    this.allEvents.complete();
    for (const tail of this.tails.values()) for (const reader of tail.readers) reader.close();
    this.tails.clear();
    try {
      if (this.cmd.status === 'ready') await this.cmd.del(this.keys.owner(this.owner));
    } catch {
      // the lease expires by itself
    }
    this.reader.disconnect();
    await this.loopDone?.catch(() => undefined);
    this.loopDone = undefined;
    if (this.ownsCmd) this.cmd.disconnect();
  }
}

function fieldMap(fields: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i]!] = fields[i + 1]!;
  return out;
}

function positive(n: number, name: string): number {
  if (typeof n !== 'number' || !(n > 0)) throw new InvalidArgumentError(`${name} must be a number > 0`);
  return n;
}
