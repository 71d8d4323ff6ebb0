import type { DateTime } from 'luxon';
import type { ObservableInput } from 'rxjs';

/** The five states of a job. `completed`, `failed` and `cancelled` are terminal. */
export type JobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

/** A job's status as `state$` publishes it. `at` is when the job entered the state (UTC). */
export interface JobStatus {
  /** The state the job is in. */
  state: JobState;
  /** Why the job failed or was cancelled, when it says. */
  error?: string;
  /** Set when `error` came from a producer's error not marked public: transports show `job failed`. */
  errorPrivate?: true;
  /** When the job entered `state` (UTC). */
  at: DateTime;
}

/** One token of a job and its position: seq is 0, 1, 2, ... per job. */
export interface TokenEvent<T> {
  /** The token's position in its job: 0 for the first token, then 1, 2, ... */
  seq: number;
  /** The token as its producer emitted it. */
  token: T;
}

/** A plain description of a job. `updatedAt` is the time of its last state change. */
export interface JobSnapshot {
  /** The job's id (`idPrefix` + a uuid v4 unless given). */
  id: string;
  /** The state the job is in. */
  state: JobState;
  /** Why the job failed or was cancelled, when it says. */
  error?: string;
  /** Set when `error` came from a producer's error not marked public: transports show `job failed`. */
  errorPrivate?: true;
  /** The principal that created the job, when it was created with one. */
  owner?: string;
  /** The key the job was created under (a chat id, say): at most one live job has it at a time. */
  key?: string;
  /** When the job was created (UTC). */
  createdAt: DateTime;
  /** When the job last changed state (UTC). */
  updatedAt: DateTime;
  /** How many tokens the job has had so far (the next token's seq). */
  tokenCount: number;
  /** When the job's first token came (UTC); absent until then. */
  firstTokenAt?: DateTime;
  /**
   * Set on a shared backend when the job was ended by another process because the one running it died:
   * `tokenCount` counts the tokens it stored, and its own readers may have seen a few more.
   */
  tailLost?: true;
}

/** What `events$` publishes: one event per create, state change and removal, in order. */
export type RegistryEvent =
  | {
      /** A job was created. */
      type: 'created';
      /** The job's id. */
      jobId: string;
      /** The principal that created the job, when it was created with one. */
      owner?: string;
      /** The key the job was created under, when it has one. */
      key?: string;
      /** When it happened (UTC). */
      at: DateTime;
    }
  | {
      /** A job moved from one state to another. */
      type: 'stateChanged';
      /** The job's id. */
      jobId: string;
      /** The state it left. */
      from: JobState;
      /** The state it entered. */
      to: JobState;
      /** Why it failed or was cancelled, when it says. */
      error?: string;
      /** Set when `error` came from a producer's error not marked public: transports show `job failed`. */
      errorPrivate?: true;
      /** When it happened (UTC). */
      at: DateTime;
    }
  | {
      /** A job was removed (by `removeJob`, after its retention, or by `dispose`). */
      type: 'removed';
      /** The job's id. */
      jobId: string;
      /** When it happened (UTC). */
      at: DateTime;
    };

/** The second argument of an {@link Executor}. */
export interface ExecutionContext {
  /** The id of the job the executor produces for. */
  jobId: string;
  /** Aborts when the job is cancelled, removed, or ended by someone else while the executor still runs. */
  signal: AbortSignal;
}

/**
 * Produces a job's tokens from its payload. What it returns becomes the job's tokens: an `Observable`, an
 * async iterable (`async function*`), a `ReadableStream`, an array or another iterable give one token per
 * value; a `Promise` (an `async` function) gives ONE token, its resolved value, so an `async` function that
 * resolves an array gives one token holding the array (a type error with a typed registry). A throw or an
 * error fails the job; the end completes it. `context.signal` aborts when the job is cancelled or removed.
 * `payload` is `undefined` for a job created without one.
 *
 * @example
 * registry.executeAndStream(id, async function* (p, { signal }) {
 *   for await (const token of model.stream(p, { signal })) yield token;
 * });
 */
export type Executor<T, P> = (payload: P | undefined, context: ExecutionContext) => ObservableInput<T>;

/**
 * An executor of a handler: every job a handler creates carries the payload its request gave (after
 * `parsePayload` or `toPayload`), so `payload` is `P`, never `undefined`. Same return contract as
 * {@link Executor}.
 */
export type PayloadExecutor<T, P> = (payload: P, context: ExecutionContext) => ObservableInput<T>;

/** A live job's token count, as `progress$` publishes it (coalesced, a few per second per job at most). */
export interface JobProgress {
  /** The job's id. */
  jobId: string;
  /** How many tokens the job has had so far. */
  tokenCount: number;
  /** When that count was read (UTC). */
  at: DateTime;
}
