import { NEVER, throwError, type Observable } from 'rxjs';
import { JobNotFoundError } from './errors.js';
import type { StreamStore } from './streams.js';
import type { JobProgress, JobSnapshot, JobState, JobStatus, RegistryEvent, TokenEvent } from './types.js';

/** A job this process holds, as a backend needs it to restore the job in a store that lost it. */
export interface HeldJob {
  /** The job's state. */
  state: JobState;
  /** Why the job failed or was cancelled, when it says. */
  error?: string;
  /** The error came from a producer and was not marked public. */
  errorPrivate?: true;
  /** The principal that created the job, when there is one. */
  owner?: string;
  /** The key it was created under, when it has one. */
  key?: string;
  /** When the job was created (ms since the epoch). */
  createdAt: number;
  /** How many tokens the job has had so far. */
  tokenCount: number;
}

/** What a backend may ask of the registry it serves. */
export interface BackendHost {
  /** Tokens kept per job for replay (`replayLimit`; Infinity for all). */
  readonly replayLimit: number;
  /** How long a terminal job is kept (`retention`), in ms. */
  readonly retentionMs: number;
  /** How much longer than retention a terminal job is kept while a paused reader catches up (ms). */
  readonly graceMs: number;
  /** What a create does while another job of its key is live (`keyConflict`). */
  readonly keyConflict: 'refuse' | 'replace';
  /** Whether this process holds the job (its events are then published by the registry itself). */
  holds(jobId: string): boolean;
  /** Ids of the jobs this process holds that are not terminal. */
  liveJobs(): string[];
  /** The keys of the live jobs this process holds. */
  liveKeys(): string[];
  /** A job this process holds, or `undefined`. */
  describe(jobId: string): HeldJob | undefined;
  /**
   * The store already ended a job this process holds (another process's lease check failed it, or its
   * end won a race): end it here too, without writing back. When the job already ended here in another
   * state, the store's end wins and this process's record is corrected, so every process reports one end.
   */
  adoptEnd(
    jobId: string,
    state: 'completed' | 'failed' | 'cancelled',
    error: string | undefined,
    errorPrivate?: boolean,
  ): void;
  /**
   * End a live job this process holds and write the end (a cancel requested by another process, tokens
   * the store refused). Returns false when the job is unknown here or already terminal.
   */
  end(jobId: string, state: 'cancelled' | 'failed', error: string): boolean;
  /**
   * The store refused the key of a job created here: another live job (`holder`) had it first. The job
   * ends `cancelled` with `error` here too, without writing back (the store has that end), and
   * `claimed(jobId)` rejects with `JobBusyError`.
   */
  keyRefused(jobId: string, holder: string, error: string): void;
}

/** What a shared backend reports of its health. */
export interface BackendStats {
  /** Failed operations so far (each counted, though logged once per outage). */
  errors: number;
  /** Kinds of operation failing right now (0: healthy). */
  failing: number;
  /** Writes sent and not yet answered. */
  pendingWrites: number;
  /** Round trip of the last write batch, in ms. */
  lagMs: number;
}

/** A job as a backend stores it when it is created here. */
export interface StoredJob {
  /** The job's id. */
  id: string;
  /** When the job was created (ms since the epoch). */
  createdAt: number;
  /** The principal that created it, when there is one. */
  owner?: string;
  /** The key it was created under, when it has one: the store decides which create of a key wins. */
  key?: string;
}

/**
 * Where jobs live beyond this process. The registry always holds the jobs it runs in memory; a shared
 * backend also writes them out (writes are fire-and-forget and batched; `flush` awaits them) and answers
 * for jobs held by other processes. Implement it to plug in another store; the core imports no store.
 */
export interface RegistryBackend {
  /** A short name for messages, e.g. `memory` or `redis`. */
  readonly name: string;
  /** False for the in-memory backend: the registry then skips every write hook. */
  readonly shared: boolean;
  /** Called once by the registry's constructor. */
  open(host: BackendHost): void;
  /** Resolves once the backend can serve; rejects with a clear error when its store cannot be reached. */
  ready(): Promise<void>;
  /**
   * Records a new job. May throw `BackendError` (refused: the store is unreachable and writes pile up);
   * nothing is then created. A keyed job's create claims its key in the store: while another process's
   * job of the key is live, the host's `keyConflict` says what happens (`keyRefused`, or that job is
   * cancelled).
   */
  jobCreated(job: StoredJob): void;
  /** Records a token. May throw `BackendError` like `jobCreated`; the token is then not appended. */
  tokenAppended(jobId: string, seq: number, token: unknown): void;
  /**
   * Records a state change. Never throws for a refused write: an end must reach the store. For an end it
   * may return a promise that settles once the store has it (or once this process took the end the store
   * already had, through `adoptEnd`): the registry ends the job's token readers then, so they report the
   * end every process reports. It must settle even when the write fails.
   */
  stateChanged(
    jobId: string,
    from: JobState,
    to: JobState,
    error: string | undefined,
    at: number,
    /** The error came from a producer and was not marked public: transports show `job failed`. */
    errorPrivate?: boolean,
  ): void | Promise<void>;
  /** Records that this process removed a job (`removeJob`, or its retention ran out); `key` is the job's key, when it has one. */
  jobRemoved(jobId: string, key?: string): void;
  /**
   * An id for a new job without a key, drawn with `draw` (the registry's `idPrefix` + a uuid v4) as often
   * as the store likes (Redis Cluster: until the id falls on the next master in turn, so a process's jobs
   * spread evenly over the masters). Optional: without it, the first draw.
   */
  idForJob?(draw: () => string): string;
  /**
   * An id for a new job of `key`, drawn with `draw` (the registry's `idPrefix` + a uuid v4) as often as
   * the store needs (Redis: until the id falls in the key's shard, so a job and its key are written
   * together). Optional: without it, the first draw.
   */
  idForKey?(key: string, draw: () => string): string;
  /**
   * The id of the job the store names as the live job of `key`, or `undefined` (the registry checks that
   * job is live). A shared backend without it does not keep keys across processes, and the registry
   * refuses keyed jobs on it.
   */
  jobOfKey?(key: string): Promise<string | undefined>;
  /**
   * Keeps a job held elsewhere from expiring while a paused reader here still has to catch up on it
   * (bounded by the host's `graceMs`). Returns the release. Optional: without it, retention is not held.
   */
  holdForReader?(jobId: string): () => void;
  /** Whether a paused reader of any process holds a job (its retention then waits). Never rejects. */
  isHeld?(jobId: string): Promise<boolean>;
  /** Resolves when every write made so far is stored. */
  flush(): Promise<void>;
  /** A job held elsewhere, or `undefined` when the store does not know it. */
  findJob(jobId: string): Promise<JobSnapshot | undefined>;
  /** Every job the store knows, across every process. */
  listJobs(): Promise<JobSnapshot[]>;
  /** The oldest seq still kept for a job held elsewhere (its token count when none is kept), or `undefined` when unknown. */
  firstKept(jobId: string): Promise<number | undefined>;
  /** Cancels a job held elsewhere: `true` moved, `false` already terminal, `undefined` unknown. */
  cancel(jobId: string, reason: string): Promise<boolean | undefined>;
  /** Tokens of a job held elsewhere, ending like `tokens$`; errors with `JobNotFoundError` when unknown. */
  tokens$(jobId: string, after: number | undefined): Observable<TokenEvent<unknown>>;
  /** Status of a job held elsewhere, ending like `state$`. */
  state$(jobId: string): Observable<JobStatus>;
  /** Registry events of other processes (never this one's own). */
  readonly events$: Observable<RegistryEvent>;
  /** Whether the backend wants the token counts of live jobs held here (`progressed`). */
  readonly wantsProgress?: boolean;
  /** A live job's token count, coalesced by the registry's `progressInterval`. */
  progressed?(jobId: string, tokenCount: number): void;
  /** Token counts of live jobs held by other processes. */
  readonly progress$?: Observable<JobProgress>;
  /**
   * Where Durable Streams live, for a shared backend that keeps them (so every process serves every
   * stream); set once `open` ran. Without it, the Durable Streams handler keeps its streams in memory.
   */
  readonly streams?: StreamStore | undefined;
  /** Health figures for metrics and readiness: failures so far, writes waiting, the last write's round trip. */
  stats?(): BackendStats;
  /** Sends the writes still pending (with a bounded wait), then releases everything. */
  close(): Promise<void>;
}

/**
 * The default backend: everything stays in this process's memory.
 *
 * @example
 * new JobRegistry({ backend: memoryBackend() }) // same as new JobRegistry()
 */
export function memoryBackend(): RegistryBackend {
  const nothing = async (): Promise<undefined> => undefined;
  const none = (): void => undefined;
  return {
    name: 'memory',
    shared: false,
    open: none,
    ready: async () => undefined,
    jobCreated: none,
    tokenAppended: none,
    stateChanged: none,
    jobRemoved: none,
    flush: async () => undefined,
    findJob: nothing,
    listJobs: async () => [],
    firstKept: nothing,
    cancel: nothing,
    tokens$: (jobId) => throwError(() => new JobNotFoundError(jobId)),
    state$: (jobId) => throwError(() => new JobNotFoundError(jobId)),
    events$: NEVER,
    close: async () => undefined,
  };
}
