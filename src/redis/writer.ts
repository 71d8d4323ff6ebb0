import { ReplyError } from 'ioredis';
import { BackendError, messageOf } from '../core/errors.js';
import type { JobState } from '../core/types.js';
import {
  RUN_MAX,
  addCommand,
  addProgress,
  putCancelRequest,
  holdRun,
  newBatch,
  putAllHeld,
  putHeldOf,
  putProgress,
  readAnswers,
  type Batch,
  type OpenRun,
  type WriterHooks,
} from './batch.js';
import type { Connection } from './connection.js';
import type { KeyClaim } from './job-keys.js';
import type { Keys } from './keys.js';
import type { Outages } from './outage.js';

export type { WriterHooks } from './batch.js';

/** TTLs the scripts apply, in ms (-1: none). */
export interface Ttls {
  /** A terminal job's keys: the registry's retention. */
  retention: number;
  /** Shard keys (events, index, live hash): refreshed on every write and by the sweep. */
  shard: number;
  /** A live job's keys: refreshed by its owner, so an orphan vanishes when no process is left. */
  live: number;
}

/**
 * Tokens waiting for the end of the event loop's turn that are sent at the end of the tick instead: a
 * pipeline of this many amortizes its write, and a token waits for at most this many producers' callbacks.
 */
const SEND_AT = 32;

/**
 * Batches this process's writes into one pipeline per group (one per master on a cluster), sends them at
 * the end of the tick (tokens: at the end of the event loop's turn, see `batch`), and reads back what
 * Redis answered. A job's consecutive tokens form a run; a batch's runs of one shard go as one TOKEN_RUNS
 * script call (a shard's lone run as TOKENS, a lone token as a plain XADD). A job's runs go in the
 * pipeline before its next write of another kind, so Redis applies a job's writes in the order they were
 * made. New jobs and tokens are refused with `BackendError` while `maxPending` writes wait for Redis;
 * state changes and removals never are, so a job's end always reaches Redis once it is back.
 */
export class Writer {
  private batches = new Map<number, Batch>();
  /** An exec is queued for this tick's microtasks (a write other than tokens is waiting). */
  private scheduled = false;
  /** An exec is queued for the end of this turn of the event loop (tokens are waiting). */
  private deferred = false;
  /** Tokens put in the batches since the last exec. */
  private unsent = 0;
  private pending = 0;
  /** How long the last batch took from send to Redis's answer (ms): the write lag other processes see. */
  lastRoundTripMs = 0;
  private readonly inflight = new Set<Promise<void>>();
  /** Ends and restores whose answer has not come yet. */
  private readonly unanswered = new Set<(stored: boolean) => void>();
  private counts: Map<string, number> | undefined;
  private closed = false;
  private lastJob = '';
  private lastShard = 0;
  private lastKey = '';
  /** The token run being added to (the last token's job): it goes in the pipeline when anything else does. */
  private open: OpenRun | undefined;

  constructor(
    private readonly conn: Connection,
    private readonly keys: Keys,
    private readonly owner: string,
    private readonly maxPending: number,
    private readonly eventsMaxLen: number,
    private readonly replayLimit: number,
    private readonly ttls: Ttls,
    private readonly outages: Outages,
    private readonly hooks: WriterHooks,
  ) {
    // With no token kept, a live job's count cannot be read off its stream: write it per tick.
    if (replayLimit === 0) this.counts = new Map();
  }

  /** Writes a new job; a keyed one claims its key too (its answer goes to the `claimAnswered` hook). */
  created(jobId: string, at: number, principal: string, claim?: KeyClaim): void {
    this.refuseWhenFull();
    const shard = this.keys.shardOf(jobId);
    const b = this.batch(shard);
    const meta = this.keys.meta(jobId, shard);
    const events = this.keys.events(shard);
    const jobs = this.keys.jobs(shard);
    const live = this.keys.live(shard);
    if (claim === undefined)
      b.pipe.jrCreate(
        meta,
        events,
        jobs,
        live,
        at,
        this.ttls.live,
        this.limit,
        principal,
        ...this.tail(jobId),
      );
    else {
      (b.claims ??= []).push([b.commands, jobId, claim.key]);
      b.pipe.jrCreateKeyed(
        meta,
        events,
        jobs,
        live,
        this.keys.keyRecord(claim.key, shard),
        this.keys.tokens(jobId, shard),
        at,
        this.ttls.live,
        this.limit,
        principal,
        ...this.tail(jobId),
        ...claim.args,
        this.ttls.retention,
      );
    }
    this.added(b);
  }

  token(jobId: string, seq: number, token: unknown): void {
    this.refuseWhenFull();
    // Tokens come in runs of one job: its shard and key are computed once per run, not per token.
    if (jobId !== this.lastJob) {
      this.lastJob = jobId;
      this.lastShard = this.keys.shardOf(jobId);
      this.lastKey = this.keys.tokens(jobId, this.lastShard);
    }
    const b = this.batch(this.lastShard, ++this.unsent >= SEND_AT);
    // String tokens (the usual LLM token) are stored raw under `s`; anything else as JSON under `t`.
    const field = typeof token === 'string' ? 's' : 't';
    const data = typeof token === 'string' ? token : (JSON.stringify(token) ?? 'null');
    const run = this.open;
    if (
      run !== undefined &&
      run.jobId === jobId &&
      run.batch === b &&
      run.field === field &&
      run.seq + run.values.length === seq &&
      run.values.length < RUN_MAX
    )
      run.values.push(data);
    else {
      if (run !== undefined) this.closeRun(run);
      this.open = { jobId, shard: this.lastShard, key: this.lastKey, seq, field, values: [data], batch: b };
      b.tokenJobs.add(jobId);
    }
    b.size++;
    this.pending++;
    this.counts?.set(jobId, seq + 1);
    if (seq === 0) {
      b.pipe.jrFirstToken(this.keys.meta(jobId, this.lastShard), String(Date.now()));
      this.added(b);
    }
  }

  /**
   * Writes a transition; for an end, returns a promise that resolves `true` once Redis's answer was read
   * (and acted on), `false` when the write did not reach Redis (the batch failed; logged here).
   */
  state(
    jobId: string,
    to: JobState,
    error: string,
    at: number,
    count: number,
    request: string,
    errorPrivate: boolean,
  ): Promise<boolean> | undefined {
    const shard = this.keys.shardOf(jobId);
    const b = this.batch(shard);
    this.before(b, jobId, shard);
    this.counts?.delete(jobId);
    const index = b.commands;
    b.transitions.push([index, jobId, to]);
    b.pipe.jrTransition(
      ...this.transitionArgs(jobId, to, error, at, count, request, this.owner, errorPrivate),
    );
    this.added(b);
    if (to !== 'completed' && to !== 'failed' && to !== 'cancelled') return undefined;
    return this.answerOf(b, index);
  }

  /** Removes a job; `key` is its key, when it has one (freed when its record still names the job). */
  removed(jobId: string, at: number, key?: string): void {
    const shard = this.keys.shardOf(jobId);
    const b = this.batch(shard);
    this.before(b, jobId, shard);
    this.counts?.delete(jobId);
    b.pipe.jrRemove(
      this.keys.meta(jobId, shard),
      this.keys.tokens(jobId, shard),
      this.keys.events(shard),
      this.keys.jobs(shard),
      this.keys.live(shard),
      at,
      ...this.tail(jobId, key),
    );
    this.added(b);
  }

  /**
   * KEYS and ARGV of the TRANSITION script (see scripts.ts). `origin` is this process, or this process
   * writing for a job it does not hold (`<owner>/remote`: a lease check, a cancel of a dead owner's job).
   */
  transitionArgs(
    jobId: string,
    to: JobState,
    error: string,
    at: number,
    count: number,
    request: string,
    origin: string,
    errorPrivate = false,
  ): Array<string | number> {
    return [
      ...this.keys.ofJob(jobId),
      to,
      error,
      at,
      this.ttls.retention,
      count,
      request,
      errorPrivate ? '1' : '',
      jobId,
      origin,
      this.eventsMaxLen,
      this.ttls.shard,
    ];
  }

  /**
   * Publishes a live job's token count on its shard's event stream (for other processes' dashboards).
   * The counts of one tick go out as one entry per shard, after the tokens of that tick.
   */
  progress(jobId: string, count: number, at: number): void {
    const shard = this.keys.shardOf(jobId);
    addProgress(this.batch(shard), shard, jobId, count, at);
  }

  /** Asks the owner of a job (through the shard's event stream) to cancel it. */
  cancelRequest(jobId: string, reason: string, request: string, at: number): void {
    const shard = this.keys.shardOf(jobId);
    const b = this.batch(shard);
    putCancelRequest(b, this.keys.events(shard), this.eventsMaxLen, this.owner, jobId, reason, request, at);
    this.pending++;
  }

  /**
   * Writes a job Redis lost back as ended (see RESTORE_ENDED). Resolves `true` once Redis answered,
   * `false` when the write did not reach Redis (the connection failed for good meanwhile).
   */
  restoreEnded(
    jobId: string,
    state: JobState,
    error: string,
    at: number,
    tokenCount: number,
    createdAt: number,
    from: JobState,
    errorPrivate: boolean,
    principal: string,
    request: string,
    key: string,
  ): Promise<boolean> {
    const shard = this.keys.shardOf(jobId);
    const b = this.batch(shard);
    this.before(b, jobId, shard);
    const index = b.commands;
    b.pipe.jrRestoreEnded(
      ...this.keys.ofJob(jobId, shard),
      state,
      error,
      at,
      this.ttls.retention,
      tokenCount,
      createdAt,
      from,
      this.limit,
      errorPrivate ? '1' : '',
      principal,
      ...this.tail(jobId),
      request,
      key,
    );
    this.added(b);
    return this.answerOf(b, index);
  }

  /**
   * Whether the command at `index` of batch `b` was stored: settles once Redis answered it, or with
   * `false` when the batch failed or the writer closed first (so nothing waits on it forever).
   */
  private answerOf(b: Batch, index: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const settle = (stored: boolean): void => {
        this.unanswered.delete(settle);
        resolve(stored);
      };
      this.unanswered.add(settle);
      (b.ends ??= []).push([index, settle]);
    });
  }

  /** Writes waiting for Redis's answer. */
  get waiting(): number {
    return this.pending;
  }

  /** Resolves when every write made so far is stored; rejects with `BackendError` when one failed. */
  flush(): Promise<void> {
    this.exec();
    if (this.inflight.size === 0) return Promise.resolve();
    return Promise.all([...this.inflight]).then(() => undefined);
  }

  close(): void {
    this.closed = true;
    for (const settle of [...this.unanswered]) settle(false);
  }

  /** The replay limit as stored with each job, so a fresh reader elsewhere knows where its tokens start. */
  private get limit(): string {
    return this.replayLimit === Infinity ? 'inf' : String(this.replayLimit);
  }

  /** The shared ARGV tail of the scripts (see scripts.ts), and `extra` after it when given. */
  private tail(jobId: string, extra?: string): Array<string | number> {
    const tail = [jobId, this.owner, this.eventsMaxLen, this.ttls.shard];
    if (extra !== undefined) tail.push(extra);
    return tail;
  }

  private refuseWhenFull(): void {
    if (this.closed) throw new BackendError('redis backend is closed; the write was refused');
    if (this.pending >= this.maxPending)
      throw new BackendError(
        `${this.pending} writes are waiting for Redis at ${this.conn.where} (maxPendingWrites); refusing new jobs and tokens until it is back`,
      );
  }

  /** One command (other than a token run) was put in the batch's pipeline. */
  private added(b: Batch): void {
    addCommand(b);
    this.pending++;
  }

  /** Before another write of a job: its token runs go in the pipeline first. */
  private before(b: Batch, jobId: string, shard: number): void {
    if (this.open !== undefined && this.open.jobId === jobId) this.closeRun(this.open);
    if (b.heldJobs.has(jobId)) this.pending += putHeldOf(b, jobId, shard, this.replayLimit, this.ttls.live);
  }

  /** Closes the open token run: it waits with its shard's other runs until they go in the pipeline. */
  private closeRun(run: OpenRun): void {
    this.open = undefined;
    this.pending += holdRun(run, this.replayLimit, this.ttls.live);
  }

  /**
   * The batch of `shard`'s group, with an exec queued for it. On a single Redis, tokens wait for the end
   * of the event loop's turn, so producers that each run in their own callback of one turn (timers,
   * immediates, socket reads) share one pipeline write, unless `SEND_AT` of them are waiting: then they
   * go at the end of this tick, so none waits behind a long turn. Any other write goes at the end of its
   * tick, so a job created here is in Redis before another process is told its id. On a cluster every
   * write goes at the end of its tick: a batch is filed under its master when it is made, and the slot
   * table can change in the I/O callbacks of a turn (a `MOVED` answer, a node gone), not within a tick.
   */
  private batch(shard: number, soon = true): Batch {
    const group = this.conn.groupOf(shard);
    let b = this.batches.get(group);
    if (b === undefined) {
      b = newBatch(this.conn.pipeline());
      this.batches.set(group, b);
    }
    if (soon || this.conn.cluster) {
      if (!this.scheduled) {
        this.scheduled = true;
        queueMicrotask(this.execSoon);
      }
    } else if (!this.deferred) {
      this.deferred = true;
      setImmediate(this.execLater);
    }
    return b;
  }

  private readonly execSoon = (): void => {
    this.scheduled = false;
    this.exec();
  };

  private readonly execLater = (): void => {
    this.deferred = false;
    this.exec();
  };

  private exec(): void {
    this.unsent = 0;
    if (this.batches.size === 0) return;
    const batches = this.batches;
    this.batches = new Map();
    if (this.open !== undefined) this.closeRun(this.open);
    // Tokens before the counts and progress entries that include them.
    for (const b of batches.values()) this.pending += putAllHeld(b, this.replayLimit, this.ttls.live);
    const counts = this.counts;
    if (counts !== undefined && counts.size > 0) {
      for (const [jobId, n] of counts) {
        const shard = this.keys.shardOf(jobId);
        const b = batches.get(this.conn.groupOf(shard));
        if (b === undefined) continue;
        b.pipe.hset(this.keys.meta(jobId, shard), 'token_count', n);
        this.added(b);
      }
      counts.clear();
    }
    for (const b of batches.values()) {
      if (b.progress !== undefined)
        this.pending += putProgress(b, (shard) => this.keys.events(shard), this.eventsMaxLen, this.owner);
      this.send(b);
    }
  }

  private send(b: Batch): void {
    const sent = Date.now();
    const run = b.pipe
      .exec()
      .then((results) => {
        this.lastRoundTripMs = Date.now() - sent;
        // Commands that never reached Redis (the connection is gone) fail the batch; errors Redis
        // answered (ReplyError) are about one command each, read below.
        const lost = results?.find(([e]) => e !== null && !(e instanceof ReplyError))?.[0];
        if (lost) throw lost;
        this.outages.ok('writes');
        if (results !== null)
          readAnswers(b, results, this.hooks, (err) =>
            this.outages.fail('writes', `a Redis write to ${this.conn.where} failed`, err),
          );
        // An end Redis answered with an error (READONLY, OOM, …) is not stored: it is written again.
        if (b.ends !== undefined) for (const [i, settle] of b.ends) settle(results?.[i]?.[0] === null);
      })
      .catch((e: unknown) => {
        this.outages.fail('writes', `${b.size} Redis writes to ${this.conn.where} failed`, e);
        if (b.tokenJobs.size > 0) this.hooks.tokensLost([...b.tokenJobs], e);
        throw new BackendError(`writes to Redis at ${this.conn.where} failed: ${messageOf(e)}`, e);
      });
    if (b.ends !== undefined) {
      const ends = b.ends;
      run.catch(() => ends.forEach(([, settle]) => settle(false)));
    }
    const settled = run.finally(() => {
      this.pending -= b.size;
      this.inflight.delete(settled);
    });
    this.inflight.add(settled);
    // A failed batch rejects the flush() calls made while it was in flight, and only those; it is
    // reported above, so the copy kept here must not count as unhandled.
    settled.catch(alreadyReported);
  }
}

function alreadyReported(): void {
  // The failure was logged (once per outage) and handed to the hooks where the batch failed.
}
