/**
 * What a shared backend keeps of a Durable Stream (see `job-registry/durable-streams`), so that every
 * process serves every operation of every stream and a name is one stream everywhere. A stream kept this
 * way is a job no process holds: it has no executor and no lease, it outlives the process that made it,
 * and it ends by a close, a delete or its deadline. Implemented by the Redis backend; the in-memory
 * registry keeps its streams in the Durable Streams handler itself.
 */
import type { JobSnapshot } from './types.js';

/** A producer's tuple (Protocol 5.2.1). */
export interface ProducerTuple {
  id: string;
  epoch: number;
  seq: number;
}

/** A stored chunk: a string token (`s`), or any other token as JSON (`t`). */
export type StoredChunk = ['s' | 't', string];

/** The metadata of a stored stream. */
export interface StoredStream {
  name: string;
  jobId: string;
  contentType: string;
  ttlSeconds?: number;
  expiresAt?: string;
  /** When a read or an append last touched it (ms since the epoch). */
  touchedAt: number;
  createdClosed: boolean;
  bytes: number;
  /**
   * The fork it is, when it is one: its chunks below `base` are read from the jobs of `segments` (each
   * `[job id, end]` holds the chunks from the previous end up to its own), the last one its source's.
   */
  fork?: {
    source: string;
    sourceJob: string;
    offset?: string;
    subOffset: number;
    base: number;
    segments: Array<[jobId: string, end: number]>;
  };
  /** Live forks of it. */
  forks: number;
  /** Deleted while forks of it are left. */
  softDeleted: boolean;
}

/** A stream to create. */
export interface StreamInit {
  name: string;
  contentType: string;
  ttlSeconds?: number;
  expiresAt?: string;
  closed: boolean;
  /** The principal that made it. */
  owner?: string;
  /** The chunks it starts with (a fork's own: its sub-offset prefix, then the body's). */
  chunks: StoredChunk[];
  /** Bytes it holds at start (a fork counts its source's). */
  bytes: number;
  /** Whether it holds JSON values (appends are then remembered for sub-offsets). */
  json: boolean;
  fork?: StoredStream['fork'];
  /** Time to its deadline (ms; `Infinity`: none): its keys live that long untouched, plus the retention. */
  keepMs: number;
}

/** An append (or a close) to apply atomically with its checks. */
export interface StreamAppend {
  chunks: StoredChunk[];
  bytes: number;
  maxBytes: number;
  json: boolean;
  producer?: ProducerTuple;
  writerSeq?: string;
  close: boolean;
  /** Time to its deadline after this append (ms; `Infinity`: none). */
  keepMs: number;
}

/** What an append came to. `count` is the stream's chunk count after it. */
export type StreamAppendResult =
  | { status: 'appended'; count: number }
  | { status: 'missing' }
  | { status: 'gone' }
  | { status: 'closed'; count: number; sameClose: boolean }
  | { status: 'full' }
  | { status: 'duplicate'; lastSeq: number }
  | { status: 'stale_epoch'; currentEpoch: number }
  | { status: 'invalid_epoch_seq' }
  | { status: 'sequence_gap'; expected: number; received: number }
  | { status: 'seq_conflict'; last: string };

/** Durable Streams kept by a shared backend. */
export interface StreamStore {
  /** A stream by name, with its job's snapshot; `undefined` when none. */
  lookup(name: string): Promise<{ stream: StoredStream; snap: JobSnapshot } | undefined>;
  /** Creates a stream (settling `reservation`, see `reserve`); `created: false` names the job that holds the name. */
  create(
    init: StreamInit,
    reservation?: string,
  ): Promise<{ created: true; jobId: string } | { created: false; jobId: string }>;
  /** Applies an append (checks, chunks, producer state, close) as one step. */
  append(stream: StoredStream, append: StreamAppend): Promise<StreamAppendResult>;
  /** Marks a read or an append: the TTL slides, and its keys live `keepMs` more. */
  touch(stream: StoredStream, keepMs: number): Promise<void>;
  /**
   * Closes it (its deadline came while idle); its data stays readable for the retention. With
   * `touchedAt` (the touch its deadline was judged on), a stream touched since is left alone (`touched`).
   */
  close(stream: StoredStream, touchedAt?: number): Promise<'closed' | 'touched' | 'missing'>;
  /** Deletes it: gone, or only hidden (`soft`) while forks of it are left; `touchedAt` as for `close`. */
  remove(stream: StoredStream, touchedAt?: number): Promise<'removed' | 'soft' | 'touched' | 'missing'>;
  /** Keeps the data of these streams' jobs at least `keepMs` more (what a fork reads from them). */
  hold(jobIds: string[], keepMs: number): Promise<void>;
  /**
   * Counts a stream about to be made for `principal` in at once (`openBy`, `open`), before the store is
   * asked; `create` with the returned reservation settles it. Release it when the create is not made.
   */
  reserve(principal: string): string;
  release(reservation: string): void;
  /** Open streams this process made (or is making), for every principal. */
  readonly open: number;
  /**
   * Counts a fork of `source` in (`+1`, refused with `gone` once it was deleted) or out (`-1`: `removed`
   * when that was the last fork of a deleted source, which then went).
   */
  forkRef(
    source: Pick<StoredStream, 'name' | 'jobId'>,
    delta: 1 | -1,
    keepMs: number,
  ): Promise<'ok' | 'removed' | 'gone' | 'missing'>;
  /** Open streams this process made for a principal (they count with its job quota here). */
  openBy(principal: string): number;
  /** Where each append of a JSON stream began (chunk counts). */
  batchStarts(stream: StoredStream): Promise<number[]>;
}
