/**
 * Durable Streams kept by a shared backend (Redis): every process serves every operation of every stream,
 * and a name is one stream everywhere. Each change is one step of the backend (its checks and its
 * chunks together); a fork keeps only its own chunks and reads the rest from its source. Imports no
 * `node:` module.
 */
import { concat, defer, from as fromArray, mergeMap, type Observable, type Subscription } from 'rxjs';
import type { JobRegistry } from '../core/registry.js';
import { isTerminal } from '../core/states.js';
import type { StoredChunk, StoredStream, StreamStore } from '../core/streams.js';
import type { TokenEvent } from '../core/types.js';
import type { Policy } from '../protocol/policy.js';
import type { Reply } from '../protocol/protocol.js';
import { HttpError } from '../protocol/status.js';
import {
  appended,
  closedAnswer,
  contentTypeMismatch,
  gone,
  notFound,
  producerRefusal,
  seqConflict,
  streamFull,
} from './answers.js';
import { Deadlines } from './deadlines.js';
import { checkAppendType, created, deadlineOf, forkPoint } from './local.js';
import type { DurableStreamsSettings } from './options.js';
import { parseJson, type AppendAsk } from './parse.js';
import { readRange } from './reader.js';
import {
  isExpired,
  segmentsOf,
  toMeta,
  type CreateCall,
  type Found,
  type StreamKeeper,
  type StreamMeta,
} from './streams.js';
import { H, bytesToToken, formatOffset, isJsonType, mediaType } from './wire.js';

/** A touch refreshes the backend's copy at most this often per stream (a read per chunk would write per chunk). */
const TOUCH_EVERY_MS = 1000;

export class StoredStreams<Raw> implements StreamKeeper<Raw> {
  /** Streams this process looked at: their deadlines run here too (any process may end a stream). */
  private readonly deadlines: Deadlines<string>;
  private readonly known = new Map<string, StreamMeta>();
  /** When each stream's touch was last written to the store, and the trailing write still due. */
  private readonly touched = new Map<
    string,
    { at: number; due?: ReturnType<typeof setTimeout> | undefined }
  >();
  private readonly ends: Subscription;

  constructor(
    private readonly registry: JobRegistry<unknown, unknown>,
    private readonly store: StreamStore,
    private readonly o: DurableStreamsSettings,
    private readonly policy: Policy<Raw>,
  ) {
    this.deadlines = new Deadlines<string>(
      (jobId) => {
        const meta = this.known.get(jobId);
        return meta === undefined ? Infinity : deadlineOf(meta, o.idleTimeoutMs);
      },
      (jobId) => void this.expire(jobId),
    );
    // Ends written by any process (this one's too: the backend's stream writes carry their own origin).
    this.ends = registry.events$.subscribe((e) => {
      if (e.type === 'removed' || (e.type === 'stateChanged' && isTerminal(e.to)))
        this.forget(e.jobId, e.type === 'removed');
    });
  }

  /** A stream ended or went: it is forgotten here unless a deadline (its TTL, its Expires-At) is left. */
  private forget(jobId: string, removed: boolean): void {
    const meta = this.known.get(jobId);
    if (meta !== undefined) meta.closed = true;
    if (removed || meta === undefined || deadlineOf(meta, this.o.idleTimeoutMs) === Infinity) {
      this.known.delete(jobId);
      clearTimeout(this.touched.get(jobId)?.due);
      this.touched.delete(jobId);
      this.deadlines.clear(jobId);
    } else this.deadlines.schedule(jobId);
  }

  async lookup(name: string): Promise<Found | undefined> {
    const found = await this.store.lookup(name);
    if (found === undefined) return undefined;
    const meta = toMeta(found.stream, isTerminal(found.snap.state));
    // This process's last touch may not be written yet (see touch): the later one counts.
    const mine = this.known.get(meta.jobId);
    if (mine !== undefined && mine.touchedAt > meta.touchedAt) meta.touchedAt = mine.touchedAt;
    if (!meta.softDeleted && isExpired(meta, Date.now())) {
      await this.drop(meta, found.stream.touchedAt);
      return undefined;
    }
    this.watch(meta);
    return { meta, snap: found.snap };
  }

  private watch(meta: StreamMeta): void {
    this.known.set(meta.jobId, meta);
    this.deadlines.schedule(meta.jobId);
  }

  touch(meta: StreamMeta): void {
    // A job of the dual-call routes read as a stream has no stream record to touch.
    if (meta.stored === undefined) return;
    const now = Date.now();
    meta.touchedAt = now;
    this.deadlines.schedule(meta.jobId);
    const last = this.touched.get(meta.jobId);
    if (last !== undefined && now - last.at < TOUCH_EVERY_MS) {
      // Within the window: one trailing write at its end, so the store always has the last touch.
      if (last.due === undefined) {
        last.due = setTimeout(
          () => {
            last.due = undefined;
            this.writeTouch(meta);
          },
          TOUCH_EVERY_MS - (now - last.at),
        );
        (last.due as { unref?: () => void }).unref?.();
      }
      return;
    }
    this.writeTouch(meta);
  }

  /** Writes a stream's last touch to the store; a fork's reads keep its sources' data as long. */
  private writeTouch(meta: StreamMeta): void {
    const now = Date.now();
    const entry = this.touched.get(meta.jobId);
    if (entry === undefined) this.touched.set(meta.jobId, { at: now });
    else entry.at = now;
    const keepMs = deadlineOf(meta, this.o.idleTimeoutMs) - now;
    const sources = [...new Set(meta.fork?.segments.map(([job]) => job) ?? [])];
    Promise.all([this.store.touch(meta.stored!, keepMs), this.store.hold(sources, keepMs)]).catch(
      (e: unknown) =>
        // The next touch tries again; a stream whose touch failed only ends sooner.
        this.o.logger.warn(
          `job-registry: could not mark stream '${meta.name.slice(0, 200)}' read: ${String(e)}`,
        ),
    );
  }

  async range(meta: StreamMeta, from: number, upto: number, max: number): Promise<unknown[]> {
    const base = meta.fork?.base ?? 0;
    if (from >= base) return readRange(this.registry, meta.jobId, from, upto, max);
    const inherited = await this.inherited(meta, from, Math.min(upto, base), max);
    if (inherited.length < Math.min(upto, base) - from || upto <= base) return inherited;
    return inherited.concat(await readRange(this.registry, meta.jobId, base, upto, max - inherited.length));
  }

  /** A fork's inherited chunks with seq in `[from, to)` (`to` at most its base), from its segments' jobs. */
  private async inherited(meta: StreamMeta, from: number, to: number, max: number): Promise<unknown[]> {
    const out: unknown[] = [];
    let start = 0;
    for (const [job, end] of meta.fork!.segments) {
      const a = Math.max(from, start);
      const b = Math.min(to, end);
      if (a < b && out.length < max) {
        const got = await readRange(this.registry, job, a, b, max - out.length);
        for (const t of got) out.push(t);
        if (got.length < b - a) break;
      }
      start = end;
      if (start >= to) break;
    }
    return out;
  }

  tokens$(meta: StreamMeta, from: number): Observable<TokenEvent<unknown>> {
    const base = meta.fork?.base ?? 0;
    const own = (at: number): Observable<TokenEvent<unknown>> =>
      this.registry.tokens$(meta.jobId, at === 0 ? {} : { after: at - 1 });
    if (from >= base) return own(from);
    const inherited = defer(() => this.inherited(meta, from, base, Infinity)).pipe(
      mergeMap((tokens) => fromArray(tokens.map((token, i) => ({ seq: from + i, token })))),
    );
    return concat(inherited, own(base));
  }

  async create(call: CreateCall<Raw>): Promise<Reply> {
    const { o, store } = this;
    const { ask, body, name, caller } = call;
    let contentType = ask.contentType;
    let ttlSeconds = ask.ttlSeconds;
    let expiresAt = ask.expiresAt;
    let fork: StoredStream['fork'];
    let prefix: string | undefined;
    let bytes = body.length;
    const source = call.source?.meta;
    if (source !== undefined) {
      if (ask.given !== undefined && mediaType(ask.given) !== mediaType(source.contentType))
        throw contentTypeMismatch('the source', source.contentType);
      contentType = source.contentType;
      const point = await forkPoint(
        source,
        call.source!.snap,
        ask.forkOffset,
        ask.subOffset,
        () => (source.stored === undefined ? Promise.resolve([]) : store.batchStarts(source.stored)),
        (from, to) => this.range(source, from, to, 1),
      );
      prefix = point.prefix;
      // A fork keeps no copy of what it inherits: its segments name the jobs that hold it.
      const segments = segmentsOf(source, point.upto);
      fork = {
        source: source.name,
        sourceJob: source.jobId,
        subOffset: ask.subOffset,
        base: point.upto,
        segments,
      };
      if (ask.forkOffset !== undefined) fork.offset = ask.forkOffset;
      bytes += source.bytes;
      if (ttlSeconds === undefined && expiresAt === undefined) {
        ttlSeconds = source.ttlSeconds;
        expiresAt = source.expiresAt;
      }
    }
    const json = isJsonType(contentType);
    const chunks: StoredChunk[] = [];
    if (prefix !== undefined) chunks.push(['s', prefix]);
    if (json) for (const v of parseJson(body, true)) chunks.push(['t', JSON.stringify(v) ?? 'null']);
    else if (body.length > 0) chunks.push(['s', bytesToToken(body)]);
    if (bytes > o.maxStreamBytes) throw streamFull(name, o.maxStreamBytes);
    // The registry's count of the caller's live jobs includes the open streams the store made here.
    // The quotas count this stream from here on (a reservation), so racing creates cannot all pass.
    this.policy.checkQuota(this.registry, caller);
    this.registry.checkRoom();
    const owner = caller.principal?.id;
    const reservation = store.reserve(owner ?? '');
    const now = Date.now();
    const keepMs =
      deadlineOf({ ttlSeconds, expiresAt, touchedAt: now, closed: ask.closed }, o.idleTimeoutMs) - now;
    let made: { created: boolean; jobId: string };
    try {
      if (source?.stored !== undefined) {
        const held = await store.forkRef(source.stored, 1, keepMs);
        if (held === 'gone')
          throw new HttpError(
            409,
            'STREAM_GONE',
            `job-registry: the source '${source.name.slice(0, 200)}' was deleted`,
          );
        if (held === 'missing') throw notFound(source.name);
        // The sources further up keep what this fork reads from them as long.
        await store.hold(
          fork!.segments.map(([job]) => job),
          keepMs,
        );
      }
      try {
        made = await store.create(
          {
            name,
            contentType,
            ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
            ...(expiresAt !== undefined ? { expiresAt } : {}),
            closed: ask.closed,
            ...(owner !== undefined ? { owner } : {}),
            chunks,
            bytes,
            json,
            ...(fork !== undefined ? { fork } : {}),
            keepMs,
          },
          reservation,
        );
      } catch (e) {
        if (source?.stored !== undefined) await this.unref(source.stored);
        throw e;
      }
    } finally {
      store.release(reservation);
    }
    if (!made.created) {
      if (source?.stored !== undefined) await this.unref(source.stored);
      throw new HttpError(409, 'STREAM_EXISTS', `job-registry: stream '${name}' was created meanwhile`);
    }
    // Its deadline runs here from the start: nobody needs to read it for it to end.
    const stream: StoredStream = {
      name,
      jobId: made.jobId,
      contentType,
      touchedAt: now,
      createdClosed: ask.closed,
      bytes,
      forks: 0,
      softDeleted: false,
      ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
      ...(expiresAt !== undefined ? { expiresAt } : {}),
      ...(fork !== undefined ? { fork } : {}),
    };
    this.watch(toMeta(stream, ask.closed));
    return created(call, contentType, (fork?.base ?? 0) + chunks.length, ask.closed, o.publicOrigin, o.base);
  }

  /**
   * One fork fewer on a source (a fork that was not made, or that went). A deleted source whose last
   * fork went goes too, and lets go of its own source in turn.
   */
  private async unref(source: Pick<StoredStream, 'name' | 'jobId'>): Promise<void> {
    const found = await this.store.lookup(source.name);
    const next = found?.stream.jobId === source.jobId ? found.stream.fork : undefined;
    const r = await this.store.forkRef(source, -1, 0);
    if (r === 'removed' && next !== undefined) await this.unref({ name: next.source, jobId: next.sourceJob });
  }

  async append(found: Found, ask: AppendAsk, body: Uint8Array, name: string): Promise<Reply> {
    const { meta, snap } = found;
    const { producer } = ask;
    const json = isJsonType(meta.contentType);
    if (body.length > 0 && !isTerminal(snap.state)) checkAppendType(ask, meta, name);
    const chunks: StoredChunk[] = [];
    if (body.length > 0) {
      if (json) for (const v of parseJson(body, false)) chunks.push(['t', JSON.stringify(v) ?? 'null']);
      else chunks.push(['s', bytesToToken(body)]);
    }
    const now = Date.now();
    meta.touchedAt = now;
    const r = await this.store.append(meta.stored!, {
      chunks,
      bytes: body.length,
      maxBytes: this.o.maxStreamBytes,
      json,
      ...(producer !== undefined ? { producer } : {}),
      ...(ask.writerSeq !== undefined ? { writerSeq: ask.writerSeq } : {}),
      close: ask.close,
      keepMs: deadlineOf({ ...meta, closed: ask.close }, this.o.idleTimeoutMs) - now,
    });
    switch (r.status) {
      case 'appended': {
        // The append wrote its touch; a fork's sources keep what it reads from them as long.
        const entry = this.touched.get(meta.jobId);
        if (meta.fork !== undefined) this.writeTouch(meta);
        else if (entry === undefined) this.touched.set(meta.jobId, { at: now });
        else entry.at = now;
        this.deadlines.schedule(meta.jobId);
        return appended(formatOffset(r.count), ask.close, producer, body.length > 0);
      }
      case 'closed': {
        const tail = formatOffset(r.count);
        if (body.length === 0 && producer === undefined)
          return { kind: 'empty', status: 204, headers: { [H.nextOffset]: tail, [H.closed]: 'true' } };
        return closedAnswer(name, tail, producer, r.sameClose);
      }
      case 'full':
        throw streamFull(name, this.o.maxStreamBytes);
      case 'gone':
        throw gone(name);
      case 'missing':
        throw notFound(name);
      case 'seq_conflict':
        throw seqConflict(ask.writerSeq!, r.last);
      default:
        return producerRefusal(r, producer!);
    }
  }

  async remove(found: Found): Promise<void> {
    await this.drop(found.meta);
  }

  /**
   * Deletes a stream (only hidden while forks of it are left); a fork that went lets go of its source.
   * With `touchedAt` (a deadline's), a stream touched since is left alone: `false`.
   */
  private async drop(meta: StreamMeta, touchedAt?: number): Promise<boolean> {
    const r = await this.store.remove(meta.stored!, touchedAt);
    if (r === 'touched') return false;
    if (r === 'removed' && meta.fork !== undefined)
      await this.unref({ name: meta.fork.sourceName, jobId: meta.fork.sourceJob });
    return true;
  }

  /** A deadline came: an expired stream is deleted; an idle one is closed (its data stays readable). */
  private async expire(jobId: string): Promise<void> {
    const meta = this.known.get(jobId);
    if (meta === undefined || this.registry.isDisposed) return;
    try {
      const found = await this.store.lookup(meta.name);
      if (found === undefined || found.stream.jobId !== jobId) return this.forget(jobId, true);
      const stored = found.stream.touchedAt;
      const now = toMeta(found.stream, isTerminal(found.snap.state));
      // This process's last touch may not be written yet: the later one counts.
      now.touchedAt = Math.max(stored, meta.touchedAt);
      if (now.softDeleted) return;
      if (isExpired(now, Date.now())) {
        if (!(await this.drop(now, stored))) this.reschedule(jobId);
        return;
      }
      if (deadlineOf(now, this.o.idleTimeoutMs) > Date.now()) {
        // Touched meanwhile (here or by another process): wait for the new deadline.
        this.known.set(jobId, now);
        return this.deadlines.schedule(jobId);
      }
      if (isTerminal(found.snap.state)) return this.forget(jobId, false);
      if ((await this.store.close(found.stream, stored)) === 'touched') return this.reschedule(jobId);
      this.o.logger.warn(
        `job-registry: durable stream '${meta.name.slice(0, 200)}' closed after ${this.o.idleTimeoutMs} ms without an append or a read (idleTimeoutMs)`,
      );
    } catch (e) {
      this.o.logger.error(
        `job-registry: durable stream '${meta.name.slice(0, 200)}' could not be ended at its deadline: ${String(e)}`,
      );
      // Tried again a little later: its deadline has passed.
      const retry = setTimeout(() => this.deadlines.schedule(jobId), 1000);
      (retry as { unref?: () => void }).unref?.();
    }
  }

  /** Another process touched the stream as its deadline came: look again once that touch is read back. */
  private reschedule(jobId: string): void {
    const retry = setTimeout(() => void this.expire(jobId), 100);
    (retry as { unref?: () => void }).unref?.();
  }

  close(): void {
    this.ends.unsubscribe();
    this.deadlines.close();
    for (const t of this.touched.values()) clearTimeout(t.due);
    this.touched.clear();
    this.known.clear();
  }
}
