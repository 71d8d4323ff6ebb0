import { InvalidArgumentError } from './errors.js';

/**
 * Where the library reports what it cannot answer to a caller: a failure in the background, a job that
 * failed with a private error, an unexpected error of a request. pino's and `console`'s methods fit.
 */
export interface Logger {
  /** A failure: a background loop, a backend operation, a request that failed unexpectedly. */
  error(message: string): void;
  /** Something handled but worth a look: a job that failed with a private error, a job Redis lost. */
  warn(message: string): void;
  /** A notable event of normal operation, such as Redis being reachable again. Optional. */
  info?(message: string): void;
  /** Detail for debugging. Optional. */
  debug?(message: string): void;
}

/** A logger that drops everything (the default where nothing needs reporting by default). */
export const silentLogger: Logger = Object.freeze({ error: () => undefined, warn: () => undefined });

/** Checks a `logger` option. @throws InvalidArgumentError when it lacks `error` or `warn`. */
export function checkLogger(logger: unknown, fallback: Logger): Logger {
  if (logger === undefined) return fallback;
  const l = logger as Partial<Logger> | null;
  if (l === null || typeof l !== 'object' || typeof l.error !== 'function' || typeof l.warn !== 'function')
    throw new InvalidArgumentError('logger must have error() and warn() methods (pino and console do)');
  // Bound, so a pino child logger keeps its `this`.
  const bound: Logger = { error: l.error.bind(l), warn: l.warn.bind(l) };
  if (typeof l.info === 'function') bound.info = l.info.bind(l);
  if (typeof l.debug === 'function') bound.debug = l.debug.bind(l);
  return bound;
}
