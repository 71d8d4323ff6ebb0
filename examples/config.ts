/**
 * The example server's settings: every limit with the default a public server can live with, and the
 * environment variables that override them (`npm start` reads them; `startServer(options)` takes the same
 * settings as options). The README's environment table lists {@link ENV_VARS}, and a test checks it does.
 */
import type { Logger } from './logger.js';

/** Everything `startServer` accepts. Every field is optional; limits default to {@link DEFAULT_LIMITS}. */
export interface ServerOptions extends Partial<Limits> {
  /** @defaultValue `'127.0.0.1'` */
  host?: string;
  /** `0` picks a free port. @defaultValue 8080 */
  port?: number;
  /** Share the registry through this Redis. @defaultValue none (in memory) */
  redisUrl?: string;
  /** Nodes of a Redis Cluster (`host:port`), instead of `redisUrl`. */
  redisClusterNodes?: string[];
  redisPrefix?: string;
  leaseMs?: number;
  blockMs?: number;
  /**
   * API keys: each is its own principal, and every route but the page, its assets, `/healthz` and
   * `/readyz` then needs `Authorization: Bearer <key>`. @defaultValue none (open: anyone may do anything)
   */
  apiKeys?: string[];
  /**
   * The HMAC secret of signed `sse_url` stream tokens, at least 32 characters. Every replica must share it.
   * @defaultValue 32 random bytes made at startup (tokens then work only on the process that signed them)
   */
  streamTokenSecret?: string;
  /** How long a signed `sse_url` stays valid, in ms. @defaultValue 300 000 (5 minutes) */
  streamTokenTtlMs?: number;
  /** Origins allowed cross-origin (`*` for any). @defaultValue none (same origin only) */
  corsOrigins?: string[];
  /** Allow credentials (cookies, `Authorization`) from the listed origins. @defaultValue false */
  corsCredentials?: boolean;
  /** Show executors' error messages to clients verbatim (debugging only). @defaultValue false */
  exposeErrors?: boolean;
  /**
   * Where the server, the registry, both handlers and the Redis backend log (pino-compatible).
   * @defaultValue a pino logger at {@link ServerOptions.logLevel}, JSON lines on stdout
   */
  logger?: Logger;
  /** The level of the default pino logger. @defaultValue `'info'` */
  logLevel?: LogLevel;
}

/** The levels of pino the example server's default logger takes (`silent` logs nothing). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The limits, as numbers (ms, counts); `Infinity` turns a count limit off. */
export interface Limits {
  /** Jobs held at once, finished ones kept for retention included (core `maxJobs`). */
  maxJobs: number;
  /** Live jobs one API key may have at once (HTTP `maxJobsPerPrincipal`). */
  maxJobsPerPrincipal: number;
  /** Executors running at once; more jobs wait in `queued` (core `concurrency`). */
  concurrency: number;
  /** Tokens one job may have: a larger `max_tokens` is refused at POST (core `maxTokensPerJob`). */
  maxTokensPerJob: number;
  /** Largest `delay_ms` of the simulated model; larger is refused at POST. */
  maxDelayMs: number;
  /** A queued job that nobody claims within this time is cancelled (core and HTTP `claimTimeout`). */
  claimTimeoutMs: number;
  /** Tokens kept per job for replay (core `replayLimit`). */
  replayLimit: number;
  /** How long a finished job is kept (core `retention`). */
  retentionMs: number;
  /** How much longer a finished job is kept while a slow reader catches up (core `retentionGrace`). */
  retentionGraceMs: number;
  /** Open token streams of one job (HTTP `maxStreamsPerJob`). */
  maxStreamsPerJob: number;
  /** Open streams of one API key (HTTP `maxStreamsPerPrincipal`). */
  maxStreamsPerPrincipal: number;
  /** Open streams in this process, of each API (`/v1/inference` and `/v1/responses`; HTTP `maxConnections`). */
  maxConnections: number;
  /** TCP connections the node server accepts at once (`server.maxConnections`). */
  maxSockets: number;
  /** Time a client has to send its request headers (`server.headersTimeout`). */
  headersTimeoutMs: number;
  /** Time a client has to send its whole request (`server.requestTimeout`); never cuts a response. */
  requestTimeoutMs: number;
  /** `Retry-After` of `429` answers, and of `503` while draining, in seconds. */
  retryAfterSeconds: number;
  /**
   * On SIGTERM or SIGINT, how long running jobs may take to finish before they are cancelled; new jobs
   * are refused (`503 DRAINING`) from the signal on (`registry.drain`).
   */
  drainMs: number;
  /** Bytes one Durable Stream may hold at `/v1/stream/` (`maxStreamBytes`); an append past it answers `413`. */
  maxStreamBytes: number;
  /**
   * An open Durable Stream without `Stream-TTL` or `Stream-Expires-At` that nobody appends to or reads for
   * this long is closed, so it frees its quota slot (`idleTimeoutMs`).
   */
  streamIdleMs: number;
}

/** The limits the example server runs with unless told otherwise. */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxJobs: 1000,
  maxJobsPerPrincipal: 20,
  concurrency: 16,
  maxTokensPerJob: 10_000,
  maxDelayMs: 5000,
  claimTimeoutMs: 60_000,
  replayLimit: 10_000,
  retentionMs: 10 * 60_000,
  retentionGraceMs: 5 * 60_000,
  maxStreamsPerJob: 8,
  maxStreamsPerPrincipal: 32,
  maxConnections: 2000,
  maxSockets: 4096,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  retryAfterSeconds: 5,
  drainMs: 10_000,
  maxStreamBytes: 16 * 1024 * 1024,
  streamIdleMs: 10 * 60_000,
});

type Kind = 'count' | 'ms' | 'string' | 'list' | 'flag' | 'port' | 'level';

/** One environment variable the example server reads. */
export interface EnvVar {
  name: string;
  option: keyof ServerOptions;
  kind: Kind;
  /** The smallest value accepted, for numbers. */
  min?: number;
}

/** Every environment variable `npm start` reads, in the order of the README's table. */
export const ENV_VARS: readonly EnvVar[] = [
  { name: 'HOST', option: 'host', kind: 'string' },
  { name: 'PORT', option: 'port', kind: 'port' },
  { name: 'API_KEYS', option: 'apiKeys', kind: 'list' },
  { name: 'STREAM_TOKEN_SECRET', option: 'streamTokenSecret', kind: 'string' },
  { name: 'STREAM_TOKEN_TTL_MS', option: 'streamTokenTtlMs', kind: 'ms', min: 1 },
  { name: 'CORS_ORIGINS', option: 'corsOrigins', kind: 'list' },
  { name: 'CORS_CREDENTIALS', option: 'corsCredentials', kind: 'flag' },
  { name: 'EXPOSE_ERRORS', option: 'exposeErrors', kind: 'flag' },
  { name: 'MAX_JOBS', option: 'maxJobs', kind: 'count', min: 1 },
  { name: 'MAX_JOBS_PER_PRINCIPAL', option: 'maxJobsPerPrincipal', kind: 'count', min: 1 },
  { name: 'CONCURRENCY', option: 'concurrency', kind: 'count', min: 1 },
  { name: 'MAX_TOKENS_PER_JOB', option: 'maxTokensPerJob', kind: 'count', min: 1 },
  { name: 'MAX_DELAY_MS', option: 'maxDelayMs', kind: 'ms', min: 0 },
  { name: 'CLAIM_TIMEOUT_MS', option: 'claimTimeoutMs', kind: 'ms', min: 1 },
  { name: 'REPLAY_LIMIT', option: 'replayLimit', kind: 'count', min: 0 },
  { name: 'RETENTION_MS', option: 'retentionMs', kind: 'ms', min: 0 },
  { name: 'RETENTION_GRACE_MS', option: 'retentionGraceMs', kind: 'ms', min: 0 },
  { name: 'MAX_STREAMS_PER_JOB', option: 'maxStreamsPerJob', kind: 'count', min: 1 },
  { name: 'MAX_STREAMS_PER_PRINCIPAL', option: 'maxStreamsPerPrincipal', kind: 'count', min: 1 },
  { name: 'MAX_CONNECTIONS', option: 'maxConnections', kind: 'count', min: 1 },
  { name: 'MAX_SOCKETS', option: 'maxSockets', kind: 'count', min: 1 },
  { name: 'HEADERS_TIMEOUT_MS', option: 'headersTimeoutMs', kind: 'ms', min: 1 },
  { name: 'REQUEST_TIMEOUT_MS', option: 'requestTimeoutMs', kind: 'ms', min: 1 },
  { name: 'RETRY_AFTER_SECONDS', option: 'retryAfterSeconds', kind: 'count', min: 1 },
  { name: 'DRAIN_MS', option: 'drainMs', kind: 'ms', min: 0 },
  { name: 'MAX_STREAM_BYTES', option: 'maxStreamBytes', kind: 'count', min: 1 },
  { name: 'STREAM_IDLE_MS', option: 'streamIdleMs', kind: 'ms', min: 1 },
  { name: 'LOG_LEVEL', option: 'logLevel', kind: 'level' },
  { name: 'REDIS_URL', option: 'redisUrl', kind: 'string' },
  { name: 'REDIS_CLUSTER_NODES', option: 'redisClusterNodes', kind: 'list' },
  { name: 'REDIS_PREFIX', option: 'redisPrefix', kind: 'string' },
  { name: 'REDIS_LEASE_MS', option: 'leaseMs', kind: 'ms', min: 1 },
  { name: 'REDIS_BLOCK_MS', option: 'blockMs', kind: 'ms', min: 1 },
];

/** A setting that cannot be used; the message names the variable and what it accepts. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * The options the environment sets. A variable that is unset or empty keeps the default.
 *
 * @throws ConfigError for a malformed value, naming the variable.
 */
export function optionsFromEnv(env: Readonly<Record<string, string | undefined>>): ServerOptions {
  const out: Record<string, unknown> = {};
  for (const v of ENV_VARS) {
    const raw = env[v.name]?.trim();
    if (raw === undefined || raw === '') continue;
    out[v.option] = parseValue(v, raw);
  }
  return out as ServerOptions;
}

function parseValue(v: EnvVar, raw: string): unknown {
  switch (v.kind) {
    case 'string':
      return raw;
    case 'level':
      if ((LOG_LEVELS as readonly string[]).includes(raw)) return raw;
      throw new ConfigError(`${v.name} must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(raw)}`);
    case 'list': {
      const items = raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      return items.length > 0 ? items : undefined;
    }
    case 'flag':
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off)$/i.test(raw)) return false;
      throw new ConfigError(`${v.name} must be 1 or 0 (true/false), got ${JSON.stringify(raw)}`);
    case 'port': {
      const n = Number(raw);
      if (!/^\d+$/.test(raw) || n > 65535)
        throw new ConfigError(`${v.name} must be a port number from 0 to 65535, got ${JSON.stringify(raw)}`);
      return n;
    }
    case 'count':
    case 'ms': {
      if (v.kind === 'count' && /^(infinity|off|none)$/i.test(raw)) return Infinity;
      const n = Number(raw);
      const min = v.min ?? 0;
      if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min)
        throw new ConfigError(
          `${v.name} must be a whole number >= ${min}${v.kind === 'ms' ? ' (milliseconds)' : ''}` +
            `${v.kind === 'count' ? ", or 'Infinity' for no limit" : ''}, got ${JSON.stringify(raw)}`,
        );
      return n;
    }
  }
}

/** The limits in force: the options over {@link DEFAULT_LIMITS}, checked against each other. */
export function resolveLimits(options: ServerOptions): Limits {
  const limits = { ...DEFAULT_LIMITS } as Limits;
  for (const key of Object.keys(DEFAULT_LIMITS) as (keyof Limits)[]) {
    const value = options[key];
    if (value !== undefined) limits[key] = value;
  }
  if (limits.headersTimeoutMs > limits.requestTimeoutMs)
    throw new ConfigError(
      `HEADERS_TIMEOUT_MS (${limits.headersTimeoutMs}) must not exceed REQUEST_TIMEOUT_MS (${limits.requestTimeoutMs})`,
    );
  return limits;
}
