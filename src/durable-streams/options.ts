import { InvalidArgumentError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';

/** Options of the Durable Streams protocol and its handlers. */
export interface DurableStreamsOptions {
  /**
   * Path the streams live under: stream `name` is `{basePath}/{name}`; a job of the dual-call routes is
   * the stream `{basePath}/{job id}`.
   * @defaultValue `'/v1/stream'`
   */
  basePath?: string;
  /**
   * How long a long-poll read waits for data before `204`, and how often an idle SSE stream gets a
   * keep-alive control event, in ms.
   * @defaultValue `30000`
   */
  longPollTimeoutMs?: number;
  /**
   * Largest request body (PUT initial data, POST append), in bytes; more answers `413`.
   * @defaultValue `67108864` (64 MiB)
   */
  maxBodyBytes?: number;
  /**
   * Chunks one catch-up GET returns at most; a reader behind by more gets them in several reads (no
   * `Stream-Up-To-Date` until the last).
   * @defaultValue `10000`
   */
  maxChunksPerRead?: number;
  /**
   * Width of a cursor interval (Protocol 8.1), in seconds.
   * @defaultValue `20`
   */
  cursorIntervalSeconds?: number;
  /** Where failures go. @defaultValue `console` */
  logger?: Logger;
}

/** The options with their defaults. */
export interface DurableStreamsSettings {
  base: string;
  longPollTimeoutMs: number;
  maxBodyBytes: number;
  maxChunksPerRead: number;
  cursorIntervalSeconds: number;
  logger: Logger;
}

/** @throws InvalidArgumentError for a malformed option. */
export function resolveDurableStreamsOptions(o: DurableStreamsOptions): DurableStreamsSettings {
  const base = o.basePath ?? '/v1/stream';
  if (typeof base !== 'string' || !/^\/[^?#\s]*[^/?#\s]$/.test(base))
    throw new InvalidArgumentError(
      `durable streams basePath must start with '/' and not end with '/', got ${JSON.stringify(base)}`,
    );
  const count = (name: string, v: number | undefined, dflt: number): number => {
    if (v === undefined) return dflt;
    if (!(typeof v === 'number' && Number.isSafeInteger(v) && v > 0))
      throw new InvalidArgumentError(`durable streams ${name} must be a whole number > 0, got ${String(v)}`);
    return v;
  };
  return {
    base,
    longPollTimeoutMs: count('longPollTimeoutMs', o.longPollTimeoutMs, 30_000),
    maxBodyBytes: count('maxBodyBytes', o.maxBodyBytes, 64 * 1024 * 1024),
    maxChunksPerRead: count('maxChunksPerRead', o.maxChunksPerRead, 10_000),
    cursorIntervalSeconds: count('cursorIntervalSeconds', o.cursorIntervalSeconds, 20),
    logger: o.logger ?? console,
  };
}
