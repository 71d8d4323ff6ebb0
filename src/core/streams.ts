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
  /** `Producer-Id`. */
  id: string;
  /** `Producer-Epoch`. */
  epoch: number;
  /** `Producer-Seq`. */
  seq: number;
}

/** A stored chunk: a string token (`s`), or any other token as JSON (`t`). */
export type StoredChunk = ['s' | 't', string];

/** Where a fork's chunks below `base` are: its source's, through a chain of forks. */
export interface StreamFork {
  /** The source's name, as given at create. */
  source: string;
  /** The source's job. */
  sourceJob: string;
  /** `Stream-Fork-Offset`, as given. */
  offset?: string;
  /** `Stream-Fork-Sub-Offset`. */
  subOffset: number;
  /** How many chunks it inherits: its own start at this seq. */
  base: number;
  /** Each `[job id, end]` holds the inherited chunks from the previous end up to its own. */
  segments: Array<[jobId: string, end: number]>;
}

/** The metadata of a stored stream. */
export interface StoredStream {
  /** Its name (the path under the handler's base). */
  name: string;
  /** Its job. */
  jobId: string;
  /** `Content-Type`, as made. */
  contentType: string;
  /** `Stream-TTL`, in seconds. */
  ttlSeconds?: number;
  /** `Stream-Expires-At`. */
  expiresAt?: string;
  /** When a read or an append last touched it (ms since the epoch). */
  touchedAt: number;
  /** Made with `Stream-Closed: true`. */
  createdClosed: boolean;
  /** Bytes it holds (a fork counts its source's). */
  bytes: number;
  /** The fork it is, when it is one. */
  fork?: StreamFork;
  /** Live forks of it. */
  forks: number;
  /** Deleted while forks of it are left. */
  softDeleted: boolean;
}

/** A stream to create. */
export interface StreamInit {
  /** Its name. */
  name: string;
  /** Its `Content-Type`. */
  contentType: string;
  /** `Stream-TTL`, in seconds. */
  ttlSeconds?: number;
  /** `Stream-Expires-At`. */
  expiresAt?: string;
  /** Made closed. */
  closed: boolean;
  /** The principal that made it. */
  owner?: string;
  /** The chunks it starts with (a fork's own: its sub-offset prefix, then the body's). */
  chunks: StoredChunk[];
  /** Bytes it holds at start (a fork counts its source's). */
  bytes: number;
  /** Whether it holds JSON values (appends are then remembered for sub-offsets). */
  json: boolean;
  /** The fork it is, when it is one. */
  fork?: StreamFork;
  /** Time to its deadline (ms; `Infinity`: none): its keys live that long untouched, plus the retention. */
  keepMs: number;
}

/** An append (or a close) to apply atomically with its checks. */
export interface StreamAppend {
  /** The chunks to append (none for a close alone). */
  chunks: StoredChunk[];
  /** The body's bytes. */
  bytes: number;
  /** The bytes one stream may hold (`maxStreamBytes`). */
  maxBytes: number;
  /** Whether the stream holds JSON values. */
  json: boolean;
  /** The producer's tuple, for an idempotent producer's append. */
  producer?: ProducerTuple;
  /** `Stream-Seq`, when given. */
  writerSeq?: string;
  /** `Stream-Closed: true`. */
  close: boolean;
  /** Time to its deadline after this append (ms; `Infinity`: none). */
  keepMs: number;
}

/** What an append came to. */
export type StreamAppendResult =
  | {
      /** Taken. */
      status: 'appended';
      /** The stream's chunk count after it. */
      count: number;
    }
  | {
      /** The stream's job is gone. */
      status: 'missing';
    }
  | {
      /** Deleted while forks of it are left. */
      status: 'gone';
    }
  | {
      /** Closed already. */
      status: 'closed';
      /** Its chunk count. */
      count: number;
      /** The append is a retry of the producer's own close. */
      sameClose: boolean;
    }
  | {
      /** Past `maxBytes`. */
      status: 'full';
    }
  | {
      /** A producer's retry: taken before. */
      status: 'duplicate';
      /** The producer's last seq taken. */
      lastSeq: number;
    }
  | {
      /** A newer epoch of the producer took over. */
      status: 'stale_epoch';
      /** That epoch. */
      currentEpoch: number;
    }
  | {
      /** A new epoch must start at seq 0. */
      status: 'invalid_epoch_seq';
    }
  | {
      /** A seq was skipped. */
      status: 'sequence_gap';
      /** The seq expected. */
      expected: number;
      /** The seq sent. */
      received: number;
    }
  | {
      /** `Stream-Seq` is not after the last one. */
      status: 'seq_conflict';
      /** The last `Stream-Seq` taken. */
      last: string;
    };

/** A stream found by name, with its job's snapshot. */
export interface StoredStreamFound {
  /** The stream. */
  stream: StoredStream;
  /** Its job now. */
  snap: JobSnapshot;
}

/** What a create came to: made, or the name is another job's. */
export interface StreamCreated {
  /** Whether this create made it (else `jobId` is the job that holds the name). */
  created: boolean;
  /** The stream's job. */
  jobId: string;
}

/** Durable Streams kept by a shared backend. */
export interface StreamStore {
  /** A stream by name, with its job's snapshot; `undefined` when none. */
  lookup(name: string): Promise<StoredStreamFound | undefined>;
  /** Creates a stream (settling `reservation`, see `reserve`); `created: false` names the job that holds the name. */
  create(init: StreamInit, reservation?: string): Promise<StreamCreated>;
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
  /** Gives back a reservation whose create was not made. */
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
