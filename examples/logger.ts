/**
 * The example server's logger: pino, handed to the registry, both handlers and the Redis backend (which
 * report private executor errors, unexpected request errors and backend outages through it); and the log
 * line of every other job failure.
 */
import { pino } from 'pino';
import type { Subscription } from 'rxjs';
import type { JobRegistry } from '../src/core/index.js';
import type { LogLevel } from './config.js';

/** Where the server writes; pino's and `console`'s methods fit (`debug` is optional, as in the library). */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  debug?(message: string): void;
}

/**
 * The default logger: pino, one JSON line per entry on stdout, written synchronously so the lines of a
 * shutdown are out before the process exits. Pipe through `npx pino-pretty` to read it as text.
 */
export function createLogger(level: LogLevel = 'info'): Logger {
  return pino({ name: 'inference-server', level }, pino.destination({ dest: 1, sync: true }));
}

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
