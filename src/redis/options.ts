import { Redis, type Cluster } from 'ioredis';
import { aliased, positiveMillis, positiveNumber, toMillis, type DurationInput } from '../core/duration.js';
import { InvalidArgumentError } from '../core/errors.js';
import { checkKnownKeys } from '../core/known-keys.js';
import { isValidPrefix } from './keys.js';

/** Where the backend reports failures of its background work, once per outage. Pino-compatible. Defaults to `console`. */
export interface BackendLogger {
  /** A failure of background work (a Redis outage, a failed write), once per outage. */
  error(message: string): void;
  /** Something handled but worth a look, such as a job whose data Redis lost. */
  warn(message: string): void;
  /** Redis reachable again after an outage (`warn` is used when this is absent). Optional. */
  info?(message: string): void;
}

/** Options of `redisBackend`. Give `url` or `redis`. */
export interface RedisBackendOptions {
  /** A Redis URL such as `redis://127.0.0.1:6379`. @defaultValue none: give `url` or `redis` */
  url?: string;
  /**
   * An ioredis `Redis` or `Cluster` to use for commands. The backend duplicates it for its blocking
   * readers (one per shard on a cluster); you close it.
   * @defaultValue none: give `url` or `redis`
   */
  redis?: Redis | Cluster;
  /** Prefix of every key. @defaultValue `'jr:'` */
  prefix?: string;
  /**
   * Shards the jobs, the event stream and the job index are spread over. Every process sharing a prefix
   * must use the same number. On a cluster, each shard is read by its own blocking connection.
   * @defaultValue 8
   */
  shards?: number;
  /** A process that stops renewing its lease this long is taken for dead, and its live jobs end as `failed`. @defaultValue 10 s */
  leaseMs?: DurationInput;
  /** How long a blocking read waits per `XREAD` before it starts again. @defaultValue 5 s */
  blockMs?: DurationInput;
  /** Registry events kept per shard's event stream (approximate trim). @defaultValue 10,000 */
  eventsMaxLen?: number;
  /**
   * How often a live job's token count is published for other processes' `progress$` (and dashboards),
   * at most, per job; 0 turns it off. (The registry's own `progressInterval` paces this process's
   * `progress$`.) @defaultValue 1 s
   */
  progressInterval?: DurationInput;
  /** @deprecated the old name of {@link RedisBackendOptions.progressInterval}. */
  progressIntervalMs?: number;
  /** Writes waiting to reach Redis (e.g. while it is down) past which new jobs and tokens are refused with `BackendError`. @defaultValue 100,000 */
  maxPendingWrites?: number;
  /** Where failures of background work are reported, once per outage. @defaultValue `console` */
  logger?: BackendLogger;
}

export interface ResolvedOptions {
  prefix: string;
  shards: number;
  leaseMs: number;
  blockMs: number;
  eventsMaxLen: number;
  progressMs: number;
  maxPending: number;
  log: BackendLogger;
}

const KNOWN = new Set([
  'url',
  'redis',
  'prefix',
  'shards',
  'leaseMs',
  'blockMs',
  'eventsMaxLen',
  'progressInterval',
  'progressIntervalMs',
  'maxPendingWrites',
  'logger',
]);

/** Checks the options; throws `InvalidArgumentError` naming the first bad one. */
export function resolveOptions(options: RedisBackendOptions): ResolvedOptions {
  if (options === null || typeof options !== 'object')
    throw new InvalidArgumentError('redisBackend needs { url } or { redis }');
  checkKnownKeys(options, [...KNOWN], 'redisBackend');
  const prefix = options.prefix ?? 'jr:';
  if (!isValidPrefix(prefix))
    throw new InvalidArgumentError(
      `redis prefix must be up to 100 letters, digits, ':', '.', '_' or '-', got ${JSON.stringify(prefix)}`,
    );
  const shards = options.shards ?? 8;
  if (!Number.isInteger(shards) || shards < 1 || shards > 1024)
    throw new InvalidArgumentError(`shards must be a whole number from 1 to 1024, got ${String(shards)}`);
  const logger = options.logger;
  if (logger !== undefined && (typeof logger?.error !== 'function' || typeof logger?.warn !== 'function'))
    throw new InvalidArgumentError('logger must have error() and warn() methods (pino and console do)');
  if (options.redis === undefined && !(typeof options.url === 'string' && options.url !== ''))
    throw new InvalidArgumentError('redisBackend needs { url } or { redis }');
  if (options.redis !== undefined && !isClient(options.redis))
    throw new InvalidArgumentError('redis must be an ioredis Redis or Cluster');
  return {
    prefix,
    shards,
    leaseMs: positiveMillis(options.leaseMs ?? 10_000, 'leaseMs'),
    blockMs: positiveMillis(options.blockMs ?? 5_000, 'blockMs'),
    eventsMaxLen: positiveNumber(options.eventsMaxLen ?? 10_000, 'eventsMaxLen'),
    progressMs: progressMs(options),
    maxPending: positiveNumber(options.maxPendingWrites ?? 100_000, 'maxPendingWrites'),
    log: logger ?? console,
  };
}

function isClient(r: unknown): boolean {
  return r instanceof Redis || (typeof r === 'object' && r !== null && (r as Cluster).isCluster === true);
}

function progressMs(options: RedisBackendOptions): number {
  const given = aliased(
    options.progressInterval,
    'progressInterval',
    options.progressIntervalMs,
    'progressIntervalMs',
  );
  const ms = toMillis(given ?? 1000, 'progressInterval');
  if (!Number.isFinite(ms))
    throw new InvalidArgumentError('progressInterval must be finite (0 turns it off)');
  return ms;
}
