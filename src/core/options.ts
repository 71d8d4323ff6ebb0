import type { SchedulerLike } from 'rxjs';
import { schedulerClock, systemClock, type Clock } from './clock.js';
import { memoryBackend, type RegistryBackend } from './backend.js';
import { toMillis, type DurationInput } from './duration.js';
import { InvalidArgumentError } from './errors.js';
import { isValidJobId } from './ids.js';
import { checkKnownKeys } from './known-keys.js';
import { checkLogger, silentLogger, type Logger } from './logger.js';

/** What `createJob` accepts. */
export interface CreateJobInit<P> {
  /** Payload for deferred execution; read back once with `takePayload`, or handed to the executor. @defaultValue none */
  payload?: P;
  /** Overrides the registry's `claimTimeout` for this job. @defaultValue the registry's `claimTimeout` */
  claimTimeout?: DurationInput;
  /**
   * The principal that creates the job (1-256 characters); kept in snapshots, events and backends.
   * @defaultValue none
   */
  owner?: string;
  /**
   * A key (a chat id, say; 1-256 characters): at most one live job has it at a time, across every
   * process of a shared backend, and `activeJob(key)` finds it. A second live job of the same key is
   * refused with `JobBusyError` or replaces the first, as the registry's `keyConflict` says. In this
   * process `createJob` decides at once. On a shared backend (Redis) the store decides between
   * processes: a create that loses there ends `cancelled` (its error names the key) once the create
   * reaches the store; `await registry.claimed(id)` tells (it rejects with `JobBusyError`), as do
   * `await registry.flush()` then `getJob(id)` or `activeJob(key)`.
   * @defaultValue none
   */
  key?: string;
}

/** Options of `tokens$`. */
export interface TokensOptions {
  /** Deliver only tokens with `seq > after` (a resume point). @defaultValue all tokens kept */
  after?: number;
}

/** Options of `JobRegistry`. Every field is optional. */
export interface JobRegistryOptions {
  /**
   * Prefix of generated ids (letters, digits, `.`, `_`, `:`, `-`).
   * @defaultValue `'job-'`
   */
  idPrefix?: string;
  /**
   * Tokens kept per job for replay to late or resuming readers.
   * @defaultValue `Infinity` (all)
   */
  replayLimit?: number;
  /**
   * How long a job stays after reaching a terminal state before it removes itself; `Infinity` keeps it
   * until `removeJob`.
   * @defaultValue 10 minutes
   */
  retention?: DurationInput;
  /**
   * How much longer than `retention` a terminal job is kept while a reader still catches up on it (a
   * stream paused by backpressure holds it, see `holdForReader`).
   * @defaultValue 5 minutes
   */
  retentionGrace?: DurationInput;
  /**
   * A queued job that nobody claims (no reader subscribes to its tokens, no producer is attached, no token
   * is emitted) within this time is cancelled, then removed by `retention`. This stops the leak of a client
   * that POSTs and never GETs; `createJob` can set it per job.
   * @defaultValue none (jobs wait forever)
   */
  claimTimeout?: DurationInput;
  /**
   * A live job that had readers and has had none (in this process) for this long is cancelled: the
   * client went away for good. Readers that resume within the time keep it alive. With a shared backend,
   * readers on other processes are not counted, so leave it off there.
   * @defaultValue none
   */
  abandonTimeout?: DurationInput;
  /**
   * Jobs this process holds at once, terminal ones kept for `retention` included. When it is full,
   * `createJob` first removes the oldest terminal job that no reader holds; when none is, it throws
   * `CapacityError`.
   * @defaultValue `Infinity`
   */
  maxJobs?: number;
  /**
   * Executors (`executeAndStream`) running at once in this process. Jobs beyond it wait in `queued`, first
   * in first out, and start as slots free; a job is `running` from the moment its executor starts.
   * @defaultValue `Infinity`
   */
  concurrency?: number;
  /**
   * Tokens one job may have; the next one fails the job (`LIMIT_EXCEEDED`), and `emit` throws
   * `LimitExceededError`.
   * @defaultValue `Infinity`
   */
  maxTokensPerJob?: number;
  /**
   * How often `progress$` (and `/v1/events`) sends a live job's token count, at most, per job.
   * @defaultValue 250 ms
   */
  progressInterval?: DurationInput;
  /**
   * Where the registry reports what no caller hears: the full error of a job that failed with a private
   * one (clients see `job failed`). pino-compatible.
   * @defaultValue none
   */
  logger?: Logger;
  /** Where jobs are shared between processes. @defaultValue `memoryBackend()` (this process only) */
  backend?: RegistryBackend;
  /**
   * What `createJob({ key })` does while another job of that key is live: `'refuse'` throws
   * `JobBusyError` (HTTP `409`); `'replace'` cancels the live one ("replaced by a newer job of its key")
   * and creates the new one. With a shared backend the live job may be another process's: a refused
   * create ends `cancelled` and `claimed(id)` rejects with `JobBusyError`; a replaced job is cancelled
   * where it runs (its executor's signal aborts there). Every process sharing a store should use the
   * same value.
   * @defaultValue `'refuse'`
   */
  keyConflict?: 'refuse' | 'replace';
  /**
   * The clock of the registry's timestamps and timers (claim, retention, abandon, progress, drain): an
   * RxJS scheduler. Pass a `VirtualTimeScheduler` or `TestScheduler` to run them in virtual time in tests.
   * A shared backend's own timers (leases, reads) keep the system clock.
   * @defaultValue the system clock (`Date.now`, unref'd timers)
   */
  scheduler?: SchedulerLike;
}

/** The options, checked, as numbers (ms, counts; `Infinity` for none). */
export interface Settings {
  prefix: string;
  replayLimit: number;
  retentionMs: number;
  graceMs: number;
  claimMs: number;
  abandonMs: number;
  maxJobs: number;
  concurrency: number;
  maxTokens: number;
  progressMs: number;
  logger: Logger;
  backend: RegistryBackend;
  clock: Clock;
  keyConflict: 'refuse' | 'replace';
}

const REGISTRY_OPTIONS = [
  'idPrefix',
  'replayLimit',
  'retention',
  'retentionGrace',
  'claimTimeout',
  'abandonTimeout',
  'maxJobs',
  'concurrency',
  'maxTokensPerJob',
  'progressInterval',
  'logger',
  'backend',
  'scheduler',
  'keyConflict',
] as const;

const DEFAULT_RETENTION_MS = 10 * 60_000;
const DEFAULT_GRACE_MS = 5 * 60_000;

/** @throws InvalidArgumentError naming the malformed option and what it accepts. */
export function resolveOptions(options: JobRegistryOptions): Settings {
  if (options === null || typeof options !== 'object')
    throw new InvalidArgumentError('options must be an object');
  checkKnownKeys(options, REGISTRY_OPTIONS, 'JobRegistry');
  const prefix = options.idPrefix ?? 'job-';
  if (typeof prefix !== 'string' || (prefix !== '' && !isValidJobId(prefix)) || prefix.length > 64)
    throw new InvalidArgumentError(
      `idPrefix must be up to 64 letters, digits, '.', '_', ':' or '-', got ${JSON.stringify(prefix)}`,
    );
  const backend = options.backend ?? memoryBackend();
  if (backend === null || typeof backend !== 'object' || typeof backend.open !== 'function')
    throw new InvalidArgumentError('backend must be a RegistryBackend, e.g. redisBackend({ url })');
  return {
    prefix,
    replayLimit: count(options.replayLimit, 'replayLimit', 0),
    retentionMs: duration(options.retention, 'retention', DEFAULT_RETENTION_MS),
    graceMs: duration(options.retentionGrace, 'retentionGrace', DEFAULT_GRACE_MS),
    claimMs: duration(options.claimTimeout, 'claimTimeout', Infinity),
    abandonMs: duration(options.abandonTimeout, 'abandonTimeout', Infinity),
    maxJobs: count(options.maxJobs, 'maxJobs', 1),
    concurrency: count(options.concurrency, 'concurrency', 1),
    maxTokens: count(options.maxTokensPerJob, 'maxTokensPerJob', 1),
    progressMs: duration(options.progressInterval, 'progressInterval', 250),
    logger: checkLogger(options.logger, silentLogger),
    backend,
    clock: options.scheduler === undefined ? systemClock : schedulerClock(options.scheduler),
    keyConflict: keyConflict(options.keyConflict),
  };
}

function keyConflict(value: unknown): 'refuse' | 'replace' {
  if (value === undefined) return 'refuse';
  if (value !== 'refuse' && value !== 'replace')
    throw new InvalidArgumentError(`keyConflict must be 'refuse' or 'replace', got ${JSON.stringify(value)}`);
  return value;
}

/** A whole number >= min, or Infinity (the default). */
function count(value: number | undefined, name: string, min: number): number {
  if (value === undefined) return Infinity;
  if (typeof value !== 'number' || !(value === Infinity || (Number.isInteger(value) && value >= min)))
    throw new InvalidArgumentError(
      `${name} must be a whole number >= ${min} or Infinity, got ${String(value)}`,
    );
  return value;
}

function duration(value: DurationInput | undefined, name: string, fallback: number): number {
  return value === undefined ? fallback : toMillis(value, name);
}
