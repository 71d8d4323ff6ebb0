/**
 * What a Durable Stream keeps beside its job: content type, expiry, writer sequence and idempotent
 * producers. In memory, held in this process (local.ts); on a shared backend, kept by the backend
 * (stored.ts), so every process serves every stream.
 */
import type { Observable } from 'rxjs';
import type { StoredStream } from '../core/streams.js';
import type { JobSnapshot, TokenEvent } from '../core/types.js';
import type { Caller } from '../protocol/access.js';
import type { HttpRequest, Reply } from '../protocol/protocol.js';
import type { AppendAsk, CreateAsk } from './parse.js';

/** A producer's place in one stream (Protocol 5.2.1): its epoch and the last seq it had accepted. */
export interface ProducerState {
  epoch: number;
  lastSeq: number;
}

/** The metadata of one stream. */
export interface StreamMeta {
  name: string;
  jobId: string;
  contentType: string;
  /** Whether the stream was made through PUT (`false`: a job of the dual-call routes, read as JSON). */
  created: boolean;
  ttlSeconds?: number;
  expiresAt?: string;
  /** When a read or append last touched it (the TTL slides from here), ms since the epoch. */
  touchedAt: number;
  createdClosed: boolean;
  /** Closed now (by an append with `Stream-Closed`, at create, or after its idle time). */
  closed: boolean;
  /** Bytes of the bodies it holds (a fork counts its source's as well), against `maxStreamBytes`. */
  bytes: number;
  /** The last `Stream-Seq` accepted (writer coordination; compared as strings). */
  lastWriterSeq?: string;
  producers: Map<string, ProducerState>;
  /** The producer tuple whose append closed the stream: its retry is a duplicate, not a conflict. */
  closedBy?: { id: string; epoch: number; seq: number };
  /** Chunk counts where each append began (JSON mode): a fork's sub-offset counts within one append. */
  batchStarts: number[];
  /**
   * What it was forked from, as given at create (compared by an idempotent re-create). A stored fork
   * keeps only its own chunks: those below `base` are read from its source's job.
   */
  fork?: {
    sourceName: string;
    /** The source itself (in memory). */
    source?: StreamMeta;
    offset?: string;
    subOffset: number;
    sourceJob: string;
    base: number;
    /** Where its inherited chunks are (stored forks; see `StoredStream`). */
    segments: Array<[jobId: string, end: number]>;
  };
  /** What the backend keeps of it, when a shared backend keeps it. */
  stored?: StoredStream;
  /** Live forks made from it: deleting it while some are left only hides it (410) until they go. */
  forks: number;
  /** Deleted while forks were left: answers 410, and its name cannot be reused (409) until they go. */
  softDeleted: boolean;
}

/** The append a chunk count falls in: its first count and its length (JSON mode), or `undefined`. */
export function batchAt(
  starts: number[],
  count: number,
  total: number,
): { start: number; size: number } | undefined {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (starts[mid]! === count) return { start: count, size: (starts[mid + 1] ?? total) - count };
    if (starts[mid]! < count) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

/** What a producer's append or close is, before it is applied. */
export type ProducerCheck =
  | { status: 'accepted'; next: ProducerState }
  | { status: 'duplicate'; lastSeq: number }
  | { status: 'stale_epoch'; currentEpoch: number }
  | { status: 'invalid_epoch_seq' }
  | { status: 'sequence_gap'; expected: number; received: number };

/** Checks a producer's (epoch, seq) against its state without changing it (Protocol 5.2.1). */
export function checkProducer(state: ProducerState | undefined, epoch: number, seq: number): ProducerCheck {
  if (state === undefined)
    return seq === 0
      ? { status: 'accepted', next: { epoch, lastSeq: 0 } }
      : { status: 'sequence_gap', expected: 0, received: seq };
  if (epoch < state.epoch) return { status: 'stale_epoch', currentEpoch: state.epoch };
  if (epoch > state.epoch)
    return seq === 0 ? { status: 'accepted', next: { epoch, lastSeq: 0 } } : { status: 'invalid_epoch_seq' };
  if (seq <= state.lastSeq) return { status: 'duplicate', lastSeq: state.lastSeq };
  if (seq === state.lastSeq + 1) return { status: 'accepted', next: { epoch, lastSeq: seq } };
  return { status: 'sequence_gap', expected: state.lastSeq + 1, received: seq };
}

/** Whether a stream's TTL or absolute expiry has passed. An unparseable expiry counts as passed. */
export function isExpired(meta: StreamMeta, now: number): boolean {
  if (meta.expiresAt !== undefined) {
    const at = Date.parse(meta.expiresAt);
    if (!Number.isFinite(at) || now >= at) return true;
  }
  return meta.ttlSeconds !== undefined && now >= meta.touchedAt + meta.ttlSeconds * 1000;
}

/** A stream and its job now. */
export interface Found {
  meta: StreamMeta;
  snap: JobSnapshot;
}

/** A create, with its body read and its fork source found (when it forks). */
export interface CreateCall<Raw> {
  req: HttpRequest<Raw>;
  name: string;
  ask: CreateAsk;
  body: Uint8Array;
  caller: Caller;
  /** The stream it forks, found and readable by the caller. */
  source?: Found;
}

/**
 * Where the streams live: this process (local.ts) or the shared backend (stored.ts). The protocol
 * checks the request and the caller; this keeps and changes the streams.
 */
export interface StreamKeeper<Raw> {
  lookup(name: string): Promise<Found | undefined>;
  create(call: CreateCall<Raw>): Promise<Reply>;
  append(found: Found, ask: AppendAsk, body: Uint8Array, name: string): Promise<Reply>;
  /** DELETE of a stream made through PUT. */
  remove(found: Found): Promise<void>;
  /** A read touched it: its TTL slides, its idle time restarts. */
  touch(meta: StreamMeta): void;
  /** Its chunks with seq in `[from, upto)`, at most `max`. */
  range(meta: StreamMeta, from: number, upto: number, max: number): Promise<unknown[]>;
  /** Its chunks from seq `from` on, live, ending with the job (a fork's inherited ones first). */
  tokens$(meta: StreamMeta, from: number): Observable<TokenEvent<unknown>>;
  close(): void;
}

/** The protocol's view of a stored stream. */
export function toMeta(stream: StoredStream, closed: boolean): StreamMeta {
  const meta: StreamMeta = {
    name: stream.name,
    jobId: stream.jobId,
    contentType: stream.contentType,
    created: true,
    touchedAt: stream.touchedAt,
    createdClosed: stream.createdClosed,
    closed,
    bytes: stream.bytes,
    producers: new Map(),
    batchStarts: [],
    forks: stream.forks,
    softDeleted: stream.softDeleted,
    stored: stream,
  };
  if (stream.ttlSeconds !== undefined) meta.ttlSeconds = stream.ttlSeconds;
  if (stream.expiresAt !== undefined) meta.expiresAt = stream.expiresAt;
  if (stream.fork !== undefined) {
    meta.fork = {
      sourceName: stream.fork.source,
      subOffset: stream.fork.subOffset,
      sourceJob: stream.fork.sourceJob,
      base: stream.fork.base,
      segments: stream.fork.segments,
    };
    if (stream.fork.offset !== undefined) meta.fork.offset = stream.fork.offset;
  }
  return meta;
}

/** The segments of a fork of `source` at `upto`: its source's own, cut there, then the source itself. */
export function segmentsOf(source: StreamMeta, upto: number): Array<[string, number]> {
  const segments: Array<[string, number]> = [];
  let start = 0;
  for (const [job, end] of source.fork?.segments ?? []) {
    if (start >= upto) break;
    segments.push([job, Math.min(end, upto)]);
    start = end;
  }
  if (upto > start) segments.push([source.jobId, upto]);
  return segments;
}
