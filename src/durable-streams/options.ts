import { aliased, positiveMillis, type DurationInput } from '../core/duration.js';
import { InvalidArgumentError } from '../core/errors.js';
import { checkKnownKeys } from '../core/known-keys.js';
import {
  POLICY_OPTIONS,
  resolvePolicyOptions,
  type PolicyOptions,
  type PolicySettings,
} from '../protocol/options.js';

/**
 * Options of the Durable Streams protocol and its handlers: the policy every surface shares (auth, quotas,
 * stream and connection limits, bodies, CORS, the logger) and the protocol's own. `Req` is the request type
 * `authenticate` receives (Node's `IncomingMessage`, or a fetch `Request`).
 */
export interface DurableStreamsOptions<Req = unknown> extends PolicyOptions<Req> {
  /**
   * Path the streams live under: stream `name` is `{basePath}/{name}`; a job of the dual-call routes is
   * the stream `{basePath}/{job id}`.
   * @defaultValue `'/v1/stream'`
   */
  basePath?: string;
  /**
   * The scheme and authority clients reach this server by (`https://api.example.com`), to make the
   * `Location` of a new stream an absolute URL. Never taken from the request's `Host`, which a client
   * chooses.
   * @defaultValue none: `Location` is the stream's path
   */
  publicOrigin?: string;
  /**
   * How long a long-poll read waits for data before `204`, and how often an idle SSE stream gets a
   * keep-alive control event.
   * @defaultValue 30 s
   */
  longPollTimeoutMs?: DurationInput;
  /**
   * Bytes one stream may hold (its bodies, a fork's source included); an append past it answers `413`.
   * @defaultValue `16777216` (16 MiB)
   */
  maxStreamBytes?: number;
  /**
   * Chunks one catch-up GET returns at most; a reader behind by more gets them in several reads (no
   * `Stream-Up-To-Date` until the last).
   * @defaultValue `10000`
   */
  maxChunksPerRead?: number;
  /**
   * Bytes one catch-up GET returns at most (at least one chunk, whatever its size); a reader behind by
   * more gets them in several reads.
   * @defaultValue `1048576` (1 MiB)
   */
  maxReadBytes?: number;
  /**
   * An open stream with neither `Stream-TTL` nor `Stream-Expires-At` that nobody appends to or reads for
   * this long is closed (its data stays readable until the registry's retention removes it), so no stream
   * holds a quota slot forever.
   * @defaultValue 1 hour
   */
  idleTimeoutMs?: DurationInput;
  /**
   * Width of a cursor interval (Protocol 8.1), in whole seconds.
   * @defaultValue 20 s
   */
  cursorInterval?: DurationInput;
  /** @deprecated the old name of {@link DurableStreamsOptions.cursorInterval}, in seconds. */
  cursorIntervalSeconds?: number;
}

/** The options with their defaults. */
export interface DurableStreamsSettings extends PolicySettings {
  base: string;
  publicOrigin: string;
  longPollTimeoutMs: number;
  maxStreamBytes: number;
  maxChunksPerRead: number;
  maxReadBytes: number;
  idleTimeoutMs: number;
  cursorIntervalSeconds: number;
}

const OWN_OPTIONS = [
  'basePath',
  'publicOrigin',
  'longPollTimeoutMs',
  'maxStreamBytes',
  'maxChunksPerRead',
  'maxReadBytes',
  'idleTimeoutMs',
  'cursorInterval',
  'cursorIntervalSeconds',
  'notFound',
] as const;

/** @throws InvalidArgumentError for a malformed option. */
export function resolveDurableStreamsOptions<Req>(o: DurableStreamsOptions<Req>): DurableStreamsSettings {
  if (o === null || typeof o !== 'object')
    throw new InvalidArgumentError('durable streams options must be an object');
  checkKnownKeys(o, [...POLICY_OPTIONS, ...OWN_OPTIONS], 'the durable streams handler');
  const base = o.basePath ?? '/v1/stream';
  if (typeof base !== 'string' || !/^\/[^?#\s]*[^/?#\s]$/.test(base))
    throw new InvalidArgumentError(
      `durable streams basePath must start with '/' and not end with '/', got ${JSON.stringify(base)}`,
    );
  const publicOrigin = o.publicOrigin ?? '';
  if (
    typeof publicOrigin !== 'string' ||
    (publicOrigin !== '' && !/^https?:\/\/[^/?#\s]+$/i.test(publicOrigin))
  )
    throw new InvalidArgumentError(
      `durable streams publicOrigin must be a scheme and authority such as 'https://api.example.com', got ${JSON.stringify(publicOrigin)}`,
    );
  const count = (name: string, v: number | undefined, dflt: number): number => {
    if (v === undefined) return dflt;
    if (!(typeof v === 'number' && Number.isSafeInteger(v) && v > 0))
      throw new InvalidArgumentError(`durable streams ${name} must be a whole number > 0, got ${String(v)}`);
    return v;
  };
  return {
    ...resolvePolicyOptions(o),
    base,
    publicOrigin,
    longPollTimeoutMs: positiveMillis(o.longPollTimeoutMs ?? 30_000, 'longPollTimeoutMs'),
    maxStreamBytes: count('maxStreamBytes', o.maxStreamBytes, 16 * 1024 * 1024),
    maxChunksPerRead: count('maxChunksPerRead', o.maxChunksPerRead, 10_000),
    maxReadBytes: count('maxReadBytes', o.maxReadBytes, 1024 * 1024),
    idleTimeoutMs: positiveMillis(o.idleTimeoutMs ?? 3_600_000, 'idleTimeoutMs'),
    cursorIntervalSeconds: Math.max(
      1,
      Math.round(
        positiveMillis(
          aliased(
            o.cursorInterval,
            'cursorInterval',
            o.cursorIntervalSeconds === undefined
              ? undefined
              : count('cursorIntervalSeconds', o.cursorIntervalSeconds, 20) * 1000,
            'cursorIntervalSeconds',
          ) ?? 20_000,
          'cursorInterval',
        ) / 1000,
      ),
    ),
  };
}
