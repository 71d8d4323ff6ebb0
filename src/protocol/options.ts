import type { DurationInput } from '../core/duration.js';
import { aliased, positiveMillis, positiveNumber, toMillis } from '../core/duration.js';
import { InvalidArgumentError } from '../core/errors.js';
import { checkKnownKeys } from '../core/known-keys.js';
import { checkLogger, type Logger } from '../core/logger.js';
import type { Executor } from '../core/registry.js';
import type { PayloadExecutor } from '../core/types.js';
import type { AccessOptions } from './access.js';

/** Cross-origin settings for frontends served from another origin. */
export interface CorsOptions {
  /**
   * The allowed origins: `'*'` (any, but never with `credentials`), one origin, or a list; a listed
   * origin is echoed back. The opaque origin `null` (sandboxed frames, `file:`) is allowed only when
   * listed as `'null'`, never by `'*'`.
   */
  origin: string | readonly string[];
  /** Allow cookies and `Authorization` from the listed origins. @defaultValue false */
  credentials?: boolean;
  /** Seconds a preflight answer may be cached. @defaultValue 600 */
  maxAgeSeconds?: number;
}

/**
 * Options of both handlers (`createJobHandler`, `createFetchHandler`); `Req` is the request type
 * `authenticate` receives (Node's `IncomingMessage`, or a fetch `Request`).
 */
export interface HandlerOptions<T, P, Req> extends AccessOptions<Req> {
  /** Where the dual-call routes live. @defaultValue `/v1/inference` */
  basePath?: string;
  /**
   * The path clients reach `basePath` under, for `sse_url` and `Location`, when a proxy or a framework
   * mounts the handler under a prefix it strips. @defaultValue the mount path the framework reports
   * (Express `req.baseUrl`) followed by `basePath`
   */
  publicBasePath?: string;
  /** The job list route. @defaultValue `/v1/jobs` */
  jobsPath?: string;
  /** The registry event stream route. @defaultValue `/v1/events` */
  eventsPath?: string;
  /**
   * Runs a POSTed payload (as `parsePayload` made it: `P`, never undefined); see {@link PayloadExecutor}
   * for what it may return. Without it, POST only stores the payload (`takePayload`) for a worker of yours.
   * @defaultValue none
   */
  execute?: PayloadExecutor<T, P>;
  /** When `execute` starts: on `'create'` (the POST) or on the first `'stream'` (deferred). @defaultValue `'create'` */
  startOn?: 'create' | 'stream';
  /** Deferred jobs (`startOn: 'stream'`) nobody streams within this time are cancelled. @defaultValue 60 s */
  claimTimeout?: DurationInput;
  /** Checks and converts a POSTed JSON body into a payload; throw to answer 400 INVALID_PAYLOAD. @defaultValue identity */
  parsePayload?: (body: unknown) => P;
  /** Token to SSE `data`. @defaultValue `JSON.stringify` */
  serialize?: (token: T) => string;
  /** Largest POST body, in bytes. @defaultValue 1 MiB */
  maxBodyBytes?: number;
  /** How long a request body may take to arrive. @defaultValue 10 s */
  bodyTimeoutMs?: DurationInput;
  /** Interval of `: ping` comments on idle streams; 0 turns them off. @defaultValue 15 s */
  heartbeatMs?: DurationInput;
  /** The `retry:` hint sent at the start of each stream. @defaultValue 1 s */
  retryMs?: DurationInput;
  /**
   * Unsent bytes per connection before backpressure: a token stream pauses reading its job until the
   * socket drains; an `/v1/events` stream is closed (its client reconnects to a fresh snapshot).
   * @defaultValue 1 MiB
   */
  maxBufferedBytes?: number;
  /** Cross-origin headers. @defaultValue off (same origin only) */
  cors?: CorsOptions;
  /**
   * Show producers' error messages to clients verbatim. Off, an error not marked public (`expose: true`,
   * `PublicError`) reaches clients as `job failed`; the full text stays in the registry.
   * @defaultValue false
   */
  exposeErrors?: boolean;
  /** Live jobs one principal may hold in this process; more answer `429 CAPACITY`. @defaultValue Infinity */
  maxJobsPerPrincipal?: number;
  /** Open token streams of one job in this handler; more answer `429 CAPACITY`. @defaultValue Infinity */
  maxStreamsPerJob?: number;
  /** Open streams (token and event) of one principal in this handler. @defaultValue Infinity */
  maxStreamsPerPrincipal?: number;
  /** Open streams (token and event) in this handler; more answer `429 CAPACITY`. @defaultValue Infinity */
  maxConnections?: number;
  /** `Retry-After` of a `429` and a `503` (rounded up to whole seconds). @defaultValue 5 s */
  retryAfter?: DurationInput;
  /** @deprecated the old name of {@link HandlerOptions.retryAfter}, in seconds. */
  retryAfterSeconds?: number;
  /** Where unexpected errors of requests (answered `500`) are reported. pino-compatible. @defaultValue `console` */
  logger?: Logger;
}

/** The policy part of the options, checked: what every protocol's requests run under (see `Policy`). */
export interface PolicySettings {
  maxBodyBytes: number;
  bodyTimeoutMs: number;
  heartbeatMs: number;
  cors: CorsOptions | undefined;
  exposeErrors: boolean;
  maxJobsPerPrincipal: number;
  maxStreamsPerJob: number;
  maxStreamsPerPrincipal: number;
  maxConnections: number;
  retryAfterSeconds: number;
  logger: Logger;
}

/** The options, checked. */
export interface HandlerSettings<T, P> extends PolicySettings {
  base: string;
  publicBase: string | undefined;
  jobsPath: string;
  eventsPath: string;
  startOn: 'create' | 'stream';
  execute: Executor<T, P> | undefined;
  claimTimeout: number;
  serialize: (token: T) => string;
  parsePayload: (body: unknown) => P;
  retryMs: number;
  maxBufferedBytes: number;
}

/** The options of the request policy, which every protocol takes. */
export const POLICY_OPTIONS = [
  'maxBodyBytes',
  'bodyTimeoutMs',
  'heartbeatMs',
  'cors',
  'exposeErrors',
  'maxJobsPerPrincipal',
  'maxStreamsPerJob',
  'maxStreamsPerPrincipal',
  'maxConnections',
  'retryAfter',
  'retryAfterSeconds',
  'authenticate',
  'authorize',
  'streamTokens',
  'logger',
] as const;

/** The policy options every protocol takes: auth, limits, bodies, CORS, redaction and the logger. */
export type PolicyOptions<Req> = AccessOptions<Req> &
  Pick<
    HandlerOptions<unknown, unknown, Req>,
    Exclude<(typeof POLICY_OPTIONS)[number], keyof AccessOptions<Req>>
  >;

/** Checks the policy options. @throws InvalidArgumentError naming the malformed option. */
export function resolvePolicyOptions<Req>(options: PolicyOptions<Req>): PolicySettings {
  for (const name of ['authenticate', 'authorize'] as const)
    if (options[name] !== undefined && typeof options[name] !== 'function')
      throw new InvalidArgumentError(`${name} must be a function`);
  const cors = options.cors;
  if (cors !== undefined) {
    const origins = typeof cors.origin === 'string' ? [cors.origin] : cors.origin;
    if (!Array.isArray(origins) || origins.some((o) => typeof o !== 'string' || o === ''))
      throw new InvalidArgumentError(`cors.origin must be '*', an origin, or a list of origins`);
    if (cors.credentials === true && origins.includes('*'))
      throw new InvalidArgumentError(
        `cors.credentials needs listed origins; '*' is never allowed with credentials`,
      );
  }
  return {
    maxBodyBytes: positiveNumber(options.maxBodyBytes ?? 1024 * 1024, 'maxBodyBytes'),
    bodyTimeoutMs: positiveMillis(options.bodyTimeoutMs ?? 10_000, 'bodyTimeoutMs'),
    heartbeatMs: finiteMillis(options.heartbeatMs ?? 15_000, 'heartbeatMs'),
    cors,
    exposeErrors: options.exposeErrors === true,
    maxJobsPerPrincipal: limit(options.maxJobsPerPrincipal, 'maxJobsPerPrincipal'),
    maxStreamsPerJob: limit(options.maxStreamsPerJob, 'maxStreamsPerJob'),
    maxStreamsPerPrincipal: limit(options.maxStreamsPerPrincipal, 'maxStreamsPerPrincipal'),
    maxConnections: limit(options.maxConnections, 'maxConnections'),
    retryAfterSeconds: retryAfterSeconds(options),
    logger: checkLogger(options.logger, console),
  };
}

/** Every option both handlers take. */
export const HANDLER_OPTIONS = [
  'basePath',
  'publicBasePath',
  'jobsPath',
  'eventsPath',
  'execute',
  'startOn',
  'claimTimeout',
  'parsePayload',
  'serialize',
  'retryMs',
  'maxBufferedBytes',
  ...POLICY_OPTIONS,
] as const;

/**
 * @param extra - option names the caller's own handler adds (checked by it).
 * @throws InvalidArgumentError naming the malformed option (an unknown one with the closest known name).
 */
export function resolveHandlerOptions<T, P, Req>(
  options: HandlerOptions<T, P, Req>,
  extra: readonly string[] = [],
): HandlerSettings<T, P> {
  if (options === null || typeof options !== 'object')
    throw new InvalidArgumentError('createJobHandler options must be an object');
  checkKnownKeys(options, [...HANDLER_OPTIONS, ...extra], 'the handler');
  const startOn = options.startOn ?? 'create';
  if (startOn !== 'create' && startOn !== 'stream')
    throw new InvalidArgumentError(`startOn must be 'create' or 'stream'`);
  for (const name of ['execute', 'parsePayload', 'serialize'] as const)
    if (options[name] !== undefined && typeof options[name] !== 'function')
      throw new InvalidArgumentError(`${name} must be a function`);
  return {
    ...resolvePolicyOptions(options),
    base: normalizePath(options.basePath ?? '/v1/inference', 'basePath'),
    publicBase:
      options.publicBasePath === undefined
        ? undefined
        : normalizePath(options.publicBasePath, 'publicBasePath'),
    jobsPath: normalizePath(options.jobsPath ?? '/v1/jobs', 'jobsPath'),
    eventsPath: normalizePath(options.eventsPath ?? '/v1/events', 'eventsPath'),
    startOn,
    // Every job a handler creates has its request's payload: the executor never sees undefined.
    execute: options.execute as Executor<T, P> | undefined,
    claimTimeout: toMillis(options.claimTimeout ?? 60_000, 'claimTimeout'),
    serialize: options.serialize ?? ((t: T) => JSON.stringify(t) ?? 'null'),
    parsePayload: options.parsePayload ?? ((b: unknown) => b as P),
    retryMs: finiteMillis(options.retryMs ?? 1000, 'retryMs'),
    maxBufferedBytes: positiveNumber(options.maxBufferedBytes ?? 1024 * 1024, 'maxBufferedBytes'),
  };
}

function normalizePath(p: string, name: string): string {
  if (typeof p !== 'string' || !p.startsWith('/'))
    throw new InvalidArgumentError(`${name} must be a path starting with '/'`);
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

function finiteMillis(value: DurationInput, name: string): number {
  const ms = toMillis(value, name);
  if (!Number.isFinite(ms)) throw new InvalidArgumentError(`${name} must be a finite duration`);
  return ms;
}

/** `Retry-After` in whole seconds (at least 1), from `retryAfter` or its old name `retryAfterSeconds`. */
function retryAfterSeconds(options: { retryAfter?: DurationInput; retryAfterSeconds?: number }): number {
  if (options.retryAfterSeconds !== undefined) positiveNumber(options.retryAfterSeconds, 'retryAfterSeconds');
  const given = aliased(
    options.retryAfter,
    'retryAfter',
    options.retryAfterSeconds === undefined ? undefined : options.retryAfterSeconds * 1000,
    'retryAfterSeconds',
  );
  return Math.max(1, Math.ceil(positiveMillis(given ?? 5000, 'retryAfter') / 1000));
}

function limit(n: number | undefined, name: string): number {
  if (n === undefined || n === Infinity) return Infinity;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1)
    throw new InvalidArgumentError(`${name} must be a whole number >= 1 or Infinity, got ${String(n)}`);
  return n;
}
