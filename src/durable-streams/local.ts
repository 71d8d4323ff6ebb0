/**
 * Durable Streams kept in this process: a `Map` by name beside the registry's jobs (the in-memory
 * registry; a shared backend keeps them itself, see stored.ts). Imports no `node:` module.
 */
import type { Observable } from 'rxjs';
import type { JobRegistry } from '../core/registry.js';
import { isTerminal } from '../core/states.js';
import type { JobSnapshot, TokenEvent } from '../core/types.js';
import type { Policy } from '../protocol/policy.js';
import type { Reply } from '../protocol/protocol.js';
import { HttpError } from '../protocol/status.js';
import {
  appended,
  closedAnswer,
  contentTypeMismatch,
  producerRefusal,
  seqConflict,
  streamFull,
} from './answers.js';
import { Deadlines } from './deadlines.js';
import type { DurableStreamsSettings } from './options.js';
import { bad, parseJson, type AppendAsk } from './parse.js';
import { readRange } from './reader.js';
import {
  batchAt,
  checkProducer,
  isExpired,
  type CreateCall,
  type Found,
  type StreamKeeper,
  type StreamMeta,
} from './streams.js';
import { bytesToToken, formatOffset, H, isJsonType, mediaType, parseOffset } from './wire.js';

export class LocalStreams<Raw> implements StreamKeeper<Raw> {
  private readonly streams = new Map<string, StreamMeta>();
  // The streams of jobs this registry holds, by job: a job that goes (retention) takes its stream along,
  // whether or not anybody looks it up again.
  private readonly byJob = new Map<string, StreamMeta>();
  private readonly removals;
  // Each stream's end by deadline (TTL, Expires-At, idle): nobody needs to read it for it to end.
  private readonly deadlines: Deadlines<StreamMeta>;

  constructor(
    private readonly registry: JobRegistry<unknown, unknown>,
    private readonly o: DurableStreamsSettings,
    private readonly policy: Policy<Raw>,
  ) {
    this.removals = registry.events$.subscribe((e) => {
      if (e.type !== 'removed') return;
      const meta = this.byJob.get(e.jobId);
      if (meta !== undefined) this.forget(meta);
    });
    this.deadlines = new Deadlines<StreamMeta>(
      (meta) => deadlineOf(meta, o.idleTimeoutMs),
      (meta) => this.expire(meta),
    );
  }

  private async snapshot(jobId: string): Promise<JobSnapshot | undefined> {
    return this.registry.getJob(jobId) ?? (await this.registry.findJob(jobId));
  }

  async lookup(name: string): Promise<Found | undefined> {
    const meta = this.streams.get(name);
    if (meta === undefined) return undefined;
    if (!meta.softDeleted && isExpired(meta, Date.now())) {
      this.drop(meta);
      return undefined;
    }
    const snap = await this.snapshot(meta.jobId);
    if (snap !== undefined) return { meta, snap };
    // The job went (retention, removeJob elsewhere): so did its stream.
    this.forget(meta);
    return undefined;
  }

  touch(meta: StreamMeta): void {
    meta.touchedAt = Date.now();
  }

  range(meta: StreamMeta, from: number, upto: number, max: number): Promise<unknown[]> {
    return readRange(this.registry, meta.jobId, from, upto, max);
  }

  tokens$(meta: StreamMeta, from: number): Observable<TokenEvent<unknown>> {
    return this.registry.tokens$(meta.jobId, from === 0 ? {} : { after: from - 1 });
  }

  /**
   * Deletes a stream: hidden (410) while forks of it are left, its job ended so it holds no quota slot
   * (a fork has its own copy of the data); gone with its job once no fork is left.
   */
  private drop(meta: StreamMeta): void {
    const { registry } = this;
    this.deadlines.clear(meta);
    if (meta.forks > 0) {
      meta.softDeleted = true;
      meta.closed = true;
      const snap = registry.isDisposed ? undefined : registry.getJob(meta.jobId);
      if (snap !== undefined && !isTerminal(snap.state)) registry.updateState(meta.jobId, 'completed');
      return;
    }
    if (!registry.isDisposed) registry.removeJob(meta.jobId);
    this.forget(meta);
  }

  /** A stream whose job is gone: its name, its timer and its hold on its source go too. */
  private forget(meta: StreamMeta): void {
    this.deadlines.clear(meta);
    if (this.byJob.get(meta.jobId) === meta) this.byJob.delete(meta.jobId);
    // A deleted stream's name stays taken while forks of it are left.
    if (this.streams.get(meta.name) === meta && !(meta.softDeleted && meta.forks > 0))
      this.streams.delete(meta.name);
    const source = meta.fork?.source;
    if (source !== undefined) {
      delete meta.fork;
      source.forks--;
      if (source.softDeleted && source.forks === 0) this.drop(source);
    }
  }

  /** A deadline came: an expired stream is deleted; an idle one is closed (its data stays readable). */
  private expire(meta: StreamMeta): void {
    const { registry } = this;
    if (this.streams.get(meta.name) !== meta || meta.softDeleted || registry.isDisposed) return;
    if (isExpired(meta, Date.now())) return this.drop(meta);
    meta.closed = true;
    const snap = registry.getJob(meta.jobId);
    if (snap !== undefined && !isTerminal(snap.state)) {
      registry.updateState(meta.jobId, 'completed');
      this.o.logger.warn(
        `job-registry: durable stream '${meta.name.slice(0, 200)}' closed after ${this.o.idleTimeoutMs} ms without an append or a read (idleTimeoutMs)`,
      );
    }
  }

  async create(call: CreateCall<Raw>): Promise<Reply> {
    const { registry, o } = this;
    const { ask, body, name, caller } = call;
    let contentType = ask.contentType;
    let inherited: unknown[] = [];
    let source: StreamMeta | undefined;
    let ttlSeconds = ask.ttlSeconds;
    let expires = ask.expiresAt;
    if (call.source !== undefined) {
      source = call.source.meta;
      if (ask.given !== undefined && mediaType(ask.given) !== mediaType(source.contentType))
        throw contentTypeMismatch('the source', source.contentType);
      contentType = source.contentType;
      inherited = await this.forkTokens(call.source, ask.forkOffset, ask.subOffset);
      if (ttlSeconds === undefined && expires === undefined) {
        ttlSeconds = source.ttlSeconds;
        expires = source.expiresAt;
      }
    }
    const chunks = isJsonType(contentType)
      ? parseJson(body, true)
      : body.length > 0
        ? [bytesToToken(body)]
        : [];
    const bytes = (source?.bytes ?? 0) + body.length;
    if (bytes > o.maxStreamBytes) throw streamFull(name, o.maxStreamBytes);
    if (this.streams.get(name) !== undefined)
      throw new HttpError(409, 'STREAM_EXISTS', `job-registry: stream '${name}' was created meanwhile`);
    this.policy.checkQuota(registry, caller);
    const owner = caller.principal?.id;
    const jobId = registry.createJob(owner === undefined ? {} : { owner });
    // A stream is written by HTTP appends, not an executor: running from the start, never "unclaimed".
    registry.updateState(jobId, 'running');
    const meta: StreamMeta = {
      name,
      jobId,
      contentType,
      created: true,
      touchedAt: Date.now(),
      createdClosed: ask.closed,
      closed: ask.closed,
      bytes,
      producers: new Map(),
      batchStarts: [],
      forks: 0,
      softDeleted: false,
    };
    if (ttlSeconds !== undefined) meta.ttlSeconds = ttlSeconds;
    if (expires !== undefined) meta.expiresAt = expires;
    if (source !== undefined) {
      meta.fork = {
        sourceName: source.name,
        source,
        subOffset: ask.subOffset,
        sourceJob: source.jobId,
        base: 0,
        segments: [],
      };
      if (ask.forkOffset !== undefined) meta.fork.offset = ask.forkOffset;
      source.forks++;
      for (const c of inherited) registry.emit(jobId, c);
    }
    if (chunks.length > 0) meta.batchStarts.push(inherited.length);
    for (const c of chunks) registry.emit(jobId, c);
    if (ask.closed) registry.updateState(jobId, 'completed');
    this.streams.set(name, meta);
    this.byJob.set(jobId, meta);
    this.deadlines.schedule(meta);
    try {
      await registry.flush();
    } catch (e) {
      // Not stored: nothing is left half-made, and the quota slot is free again.
      this.drop(meta);
      throw e;
    }
    return created(call, contentType, inherited.length + chunks.length, ask.closed, o.publicOrigin, o.base);
  }

  /**
   * The chunks a fork starts with: the source's up to the fork offset (its tail by default), plus a
   * sub-offset into the append there (JSON: that many values of it; bytes: that many bytes of it).
   */
  private async forkTokens(found: Found, offset: string | undefined, subOffset: number): Promise<unknown[]> {
    const { meta, snap } = found;
    const { upto, prefix } = await forkPoint(
      meta,
      snap,
      offset,
      subOffset,
      async () => meta.batchStarts,
      (from, to) => readRange(this.registry, meta.jobId, from, to, 1),
    );
    const tokens = await readRange(this.registry, meta.jobId, 0, upto, Infinity);
    if (tokens.length < upto) throw bad('the source stream no longer holds Stream-Fork-Offset');
    if (prefix !== undefined) tokens.push(prefix);
    return tokens;
  }

  async append(found: Found, ask: AppendAsk, body: Uint8Array, name: string): Promise<Reply> {
    const { registry, o } = this;
    const { meta } = found;
    const { producer } = ask;
    meta.touchedAt = Date.now();
    // Everything from here to the emits is synchronous: a producer's check and its append are one step.
    const snap = registry.getJob(meta.jobId) ?? found.snap;
    const tail = (): string => formatOffset(registry.getJob(meta.jobId)?.tokenCount ?? snap.tokenCount);
    if (isTerminal(snap.state)) {
      // Closing a closed stream is idempotent; a producer's close counts as its append would.
      if (body.length === 0 && producer === undefined)
        return { kind: 'empty', status: 204, headers: { [H.nextOffset]: tail(), [H.closed]: 'true' } };
      return closedAnswer(name, tail(), producer, sameTuple(meta.closedBy, producer));
    }
    if (body.length > 0) {
      if (meta.bytes + body.length > o.maxStreamBytes) throw streamFull(name, o.maxStreamBytes);
      checkAppendType(ask, meta, name);
    }
    const check =
      producer === undefined
        ? undefined
        : checkProducer(meta.producers.get(producer.id), producer.epoch, producer.seq);
    if (check !== undefined && check.status !== 'accepted') return producerRefusal(check, producer!);
    if (
      ask.writerSeq !== undefined &&
      body.length > 0 &&
      meta.lastWriterSeq !== undefined &&
      ask.writerSeq <= meta.lastWriterSeq
    )
      throw seqConflict(ask.writerSeq, meta.lastWriterSeq);
    const chunks =
      body.length === 0 ? [] : isJsonType(meta.contentType) ? parseJson(body, false) : [bytesToToken(body)];
    if (chunks.length > 0 && isJsonType(meta.contentType))
      meta.batchStarts.push(registry.getJob(meta.jobId)?.tokenCount ?? snap.tokenCount);
    for (const c of chunks) registry.emit(meta.jobId, c);
    meta.bytes += body.length;
    if (check?.status === 'accepted') meta.producers.set(producer!.id, check.next);
    if (ask.writerSeq !== undefined && body.length > 0) meta.lastWriterSeq = ask.writerSeq;
    if (ask.close) {
      registry.updateState(meta.jobId, 'completed');
      meta.closed = true;
      if (producer !== undefined) meta.closedBy = producer;
    }
    await registry.flush();
    return appended(tail(), ask.close, producer, body.length > 0);
  }

  async remove(found: Found): Promise<void> {
    this.drop(found.meta);
  }

  close(): void {
    this.removals.unsubscribe();
    this.deadlines.close();
  }
}

/** When a stream ends by itself: its Expires-At, its TTL after the last touch, or its idle time. */
export function deadlineOf(
  meta: {
    expiresAt?: string | undefined;
    ttlSeconds?: number | undefined;
    touchedAt: number;
    closed: boolean;
  },
  idleMs: number,
): number {
  let at = Infinity;
  if (meta.expiresAt !== undefined) at = Date.parse(meta.expiresAt);
  if (meta.ttlSeconds !== undefined) at = Math.min(at, meta.touchedAt + meta.ttlSeconds * 1000);
  if (meta.expiresAt === undefined && meta.ttlSeconds === undefined && !meta.closed)
    at = meta.touchedAt + idleMs;
  return at;
}

/** An append's Content-Type must be given and be the stream's. */
export function checkAppendType(ask: AppendAsk, meta: StreamMeta, name: string): void {
  if (ask.contentType === undefined || ask.contentType.trim() === '')
    throw bad('an append needs a Content-Type');
  if (mediaType(ask.contentType) !== mediaType(meta.contentType))
    throw contentTypeMismatch(`stream '${name}'`, meta.contentType);
}

/**
 * Where a fork starts in its source: the chunks it inherits (`upto`), plus, in bytes mode, the first
 * `subOffset` bytes of the append at the fork offset (`prefix`).
 */
export async function forkPoint(
  meta: StreamMeta,
  snap: JobSnapshot,
  offset: string | undefined,
  subOffset: number,
  starts: () => Promise<number[]>,
  read: (from: number, to: number) => Promise<unknown[]>,
): Promise<{ upto: number; prefix?: string }> {
  const at = offset === undefined ? snap.tokenCount : parseOffset(offset)!;
  if (at > snap.tokenCount) throw bad('Stream-Fork-Offset is beyond the source stream');
  if (subOffset === 0) return { upto: at };
  if (isJsonType(meta.contentType)) {
    const batch = batchAt(await starts(), at, snap.tokenCount);
    if (batch === undefined || subOffset > batch.size)
      throw bad('Stream-Fork-Sub-Offset is beyond the append at Stream-Fork-Offset');
    return { upto: at + subOffset };
  }
  if (at >= snap.tokenCount) throw bad('Stream-Fork-Sub-Offset is beyond the source stream');
  const [next] = await read(at, at + 1);
  if (next === undefined || subOffset > (next as string).length)
    throw bad('Stream-Fork-Sub-Offset is beyond the append at Stream-Fork-Offset');
  return { upto: at, prefix: (next as string).slice(0, subOffset) };
}

/** The answer to a create. */
export function created<Raw>(
  call: CreateCall<Raw>,
  contentType: string,
  count: number,
  closed: boolean,
  origin: string,
  base: string,
): Reply {
  const headers: Record<string, string> = {
    'Content-Type': contentType,
    [H.nextOffset]: formatOffset(count),
    // Built from the configured path only, never from the request's Host or an absolute-form target.
    Location: `${origin}${call.req.mountPath}${base}/${call.name}`,
  };
  if (closed) headers[H.closed] = 'true';
  return { kind: 'empty', status: 201, headers };
}

function sameTuple(
  a: { id: string; epoch: number; seq: number } | undefined,
  b: { id: string; epoch: number; seq: number } | undefined,
): boolean {
  return a !== undefined && b !== undefined && a.id === b.id && a.epoch === b.epoch && a.seq === b.seq;
}
