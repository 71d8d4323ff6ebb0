/**
 * The example server's logger (also handed to the registry and the handler, which report private executor
 * errors and unexpected request errors through it), and the log line of every other job failure.
 */
import type { Subscription } from 'rxjs';
import type { JobRegistry } from '../src/core/index.js';

/** Where the server writes; pino's and `console`'s methods fit. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** `info` to stdout, `warn` and `error` to stderr. */
export const consoleLogger: Logger = {
  info: (m) => console.log(m),
  warn: (m) => console.error(m),
  error: (m) => console.error(m),
};

/**
 * Logs, once per job, every failure of a job this process holds that the registry's own `logger` does not:
 * the registry reports private executor errors (full text and stack; clients see `job failed`), this the
 * rest (public errors such as the simulated failure, limits, a lost backend). Jobs held by other processes
 * (their events reach this one through a shared backend) are left to the process that ran them.
 */
export function logJobFailures<T, P>(registry: JobRegistry<T, P>, logger: Logger): Subscription {
  const logged = new Set<string>();
  return registry.events$.subscribe((e) => {
    if (e.type === 'removed') {
      logged.delete(e.jobId);
      return;
    }
    if (e.type !== 'stateChanged' || e.to !== 'failed' || e.errorPrivate === true || logged.has(e.jobId))
      return;
    if (registry.isDisposed || !registry.hasJob(e.jobId)) return;
    logged.add(e.jobId);
    const owner = registry.getJob(e.jobId)?.owner;
    logger.error(
      `inference-server: job ${e.jobId}${owner === undefined ? '' : ` of ${owner}`} failed: ${e.error ?? '(no reason given)'}`,
    );
  });
}
