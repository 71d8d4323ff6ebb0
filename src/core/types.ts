import type { DateTime } from 'luxon';
import type { ObservableInput } from 'rxjs';

/** The five states of a job. `completed`, `failed` and `cancelled` are terminal. */
export type JobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

/** A job's status as `state$` publishes it. `at` is when the job entered the state (UTC). */
export interface JobStatus {
  state: JobState;
  error?: string;
  /** Set when `error` came from a producer's error not marked public: transports show `job failed`. */
  errorPrivate?: true;
  at: DateTime;
}

/** One token of a job and its position: seq is 0, 1, 2, ... per job. */
export interface TokenEvent<T> {
  seq: number;
  token: T;
}

/** A plain description of a job. `updatedAt` is the time of its last state change. */
export interface JobSnapshot {
  id: string;
  state: JobState;
  error?: string;
  /** Set when `error` came from a producer's error not marked public: transports show `job failed`. */
  errorPrivate?: true;
  /** The principal that created the job, when it was created with one. */
  owner?: string;
  createdAt: DateTime;
  updatedAt: DateTime;
  tokenCount: number;
}

/** What `events$` publishes: one event per create, state change and removal, in order. */
export type RegistryEvent =
  | { type: 'created'; jobId: string; owner?: string; at: DateTime }
  | {
      type: 'stateChanged';
      jobId: string;
      from: JobState;
      to: JobState;
      error?: string;
      errorPrivate?: true;
      at: DateTime;
    }
  | { type: 'removed'; jobId: string; at: DateTime };

/** The second argument of an {@link Executor}. */
export interface ExecutionContext {
  jobId: string;
  /** Aborts when the job is cancelled, removed, or ended by someone else while the executor still runs. */
  signal: AbortSignal;
}

/** Produces a job's tokens from its payload: an Observable, a Promise, an (async) iterable or an array. */
export type Executor<T, P> = (payload: P | undefined, context: ExecutionContext) => ObservableInput<T>;

/** A live job's token count, as `progress$` publishes it (coalesced, a few per second per job at most). */
export interface JobProgress {
  jobId: string;
  tokenCount: number;
  at: DateTime;
}
