/**
 * What operators of the example server get: `/healthz` (alive), `/readyz` (ready for new work) and
 * `/metrics` (Prometheus text: the registry's metrics through `job-registry/metrics`, and the process's
 * own through prom-client's default metrics, on one prom-client registry).
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { JobRegistry } from '../src/core/index.js';
import { registryMetrics, type RegistryMetrics } from '../src/metrics/index.js';

/** A probe's answer. */
export interface ProbeAnswer {
  status: number;
  body: { ok: boolean; reason?: string };
  headers?: Record<string, string>;
}

/** What `/readyz` looks at besides the registry. */
export interface ReadinessState {
  /** True from the shutdown signal on. */
  draining(): boolean;
  /** `Retry-After` of a `503` while draining, in seconds. */
  retryAfterSeconds: number;
  /** How long `/readyz` waits for the backend's first connection. @defaultValue 2000 */
  readyTimeoutMs?: number;
}

/**
 * `/healthz`: `200` while the process serves at all. `/readyz`: `503` while draining (with
 * `Retry-After`), while the backend has not connected yet, and while any kind of backend operation
 * fails (`registry.stats().backend.failing`), so a load balancer sends new work elsewhere; else `200`.
 */
export function probes<T, P>(
  registry: JobRegistry<T, P>,
  state: ReadinessState,
): Record<string, () => Promise<ProbeAnswer>> {
  const notReady = (reason: string, headers?: Record<string, string>): ProbeAnswer => ({
    status: 503,
    body: { ok: false, reason },
    ...(headers ? { headers } : {}),
  });
  return {
    '/healthz': async () => ({ status: 200, body: { ok: true } }),
    '/readyz': async () => {
      if (state.draining() || registry.isDisposed)
        return notReady('draining', { 'Retry-After': String(state.retryAfterSeconds) });
      try {
        await withTimeout(registry.ready(), state.readyTimeoutMs ?? 2000);
      } catch {
        return notReady('backend unreachable');
      }
      if (registry.isDisposed) return notReady('draining');
      if ((registry.stats().backend?.failing ?? 0) > 0) return notReady('backend failing');
      return { status: 200, body: { ok: true } };
    },
  };
}

/**
 * The server's metrics on one prom-client registry: the job registry's (jobs by state, executors, open
 * streams of `handlers`, tokens, jobs created and ended, backend errors, failures, pending writes and lag)
 * and prom-client's default process metrics (CPU, memory, event loop lag, GC). Everything is read at
 * scrape time.
 */
export function serverMetrics<T, P>(
  registry: JobRegistry<T, P>,
  handlers: ReadonlyArray<{ readonly connections: number }>,
): RegistryMetrics {
  const register = new Registry();
  collectDefaultMetrics({ register });
  // registryMetrics takes JobRegistry<unknown, unknown>, which a typed registry is not assignable to.
  return registryMetrics(registry as unknown as JobRegistry<unknown, unknown>, { handlers, register });
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timed out')), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
