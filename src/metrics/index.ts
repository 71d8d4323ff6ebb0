/**
 * job-registry/metrics: Prometheus metrics of a registry (and its handlers) through prom-client, the
 * library Node services already run for Prometheus. Everything is read at scrape time from
 * `registry.stats()`: nothing is added to the token path.
 *
 * @example
 * const metrics = registryMetrics(registry, { handlers: [handler] });
 * // GET /metrics
 * res.writeHead(200, { 'Content-Type': metrics.contentType }).end(await metrics.metrics());
 *
 * @module job-registry/metrics
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { InvalidArgumentError, RegistryDisposedError } from '../core/errors.js';
import type { JobRegistry, RegistryStats } from '../core/registry.js';
import { JOB_STATES } from '../core/states.js';

/** Options of {@link registryMetrics}. */
export interface MetricsOptions {
  /** The prom-client registry to add to. @defaultValue a new one */
  register?: Registry;
  /** Prefix of every metric name. @defaultValue `'job_registry_'` */
  prefix?: string;
  /** Handlers whose open streams are counted (anything with `connections`). @defaultValue none */
  handlers?: ReadonlyArray<{
    /** SSE streams the handler has open now. */
    readonly connections: number;
  }>;
}

/** The metrics of one registry. */
export interface RegistryMetrics {
  /** The prom-client registry the metrics are in. */
  register: Registry;
  /** The Prometheus text of every metric in `register`. */
  metrics(): Promise<string>;
  /** The `Content-Type` of that text. */
  contentType: string;
}

/**
 * Registers the registry's metrics: jobs held by state, executors waiting and running, open streams,
 * tokens, jobs created and ended (counters, so `rate()` gives tokens per second), and the shared backend's
 * errors, failing operations, pending writes and write lag.
 *
 * @throws InvalidArgumentError without a registry or with a malformed option.
 */
export function registryMetrics<T, P>(
  registry: JobRegistry<T, P>,
  options: MetricsOptions = {},
): RegistryMetrics {
  if (registry === null || typeof registry !== 'object' || typeof registry.stats !== 'function')
    throw new InvalidArgumentError('registryMetrics(registry, options) needs a JobRegistry');
  const register = options.register ?? new Registry();
  const p = options.prefix ?? 'job_registry_';
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(p))
    throw new InvalidArgumentError(`metrics prefix '${p}' is not a Prometheus name`);
  const handlers = options.handlers ?? [];
  const registers = [register];

  // One stats() per scrape, shared by every collect callback of that scrape. A scrape collects the
  // metrics in the order they were made, so the first one (`jobs`) reads afresh; the others reuse what
  // it read within the same millisecond (a lone metric read on its own reads afresh too).
  let cached: { at: number; stats: RegistryStats | undefined } = { at: -1, stats: undefined };
  const stats = (fresh = false): RegistryStats | undefined => {
    const now = Date.now();
    if (fresh || cached.at !== now) {
      let s: RegistryStats | undefined;
      try {
        s = registry.stats();
      } catch (e) {
        // A disposed registry has nothing to report: its gauges read 0.
        if (!(e instanceof RegistryDisposedError)) throw e;
        s = undefined;
      }
      cached = { at: now, stats: s };
    }
    return cached.stats;
  };
  // Counters follow the registry's running totals: each scrape adds what grew since the last one.
  const seen = new Map<string, number>();
  const grow = (
    counter: Counter<string>,
    key: string,
    total: number,
    labels?: Record<string, string>,
  ): void => {
    const before = seen.get(key) ?? 0;
    if (total > before) {
      if (labels === undefined) counter.inc(total - before);
      else counter.inc(labels, total - before);
      seen.set(key, total);
    }
  };

  new Gauge({
    name: `${p}jobs`,
    help: 'Jobs this process holds, by state',
    labelNames: ['state'],
    registers,
    collect() {
      const s = stats(true);
      for (const state of JOB_STATES) this.set({ state }, s?.jobs[state] ?? 0);
    },
  });
  new Gauge({
    name: `${p}executors`,
    help: 'Executors waiting for a slot (concurrency) and running',
    labelNames: ['status'],
    registers,
    collect() {
      const s = stats();
      this.set({ status: 'waiting' }, s?.executors.waiting ?? 0);
      this.set({ status: 'running' }, s?.executors.running ?? 0);
    },
  });
  new Gauge({
    name: `${p}open_streams`,
    help: 'Open SSE streams (token and event streams) of the handlers',
    registers,
    collect() {
      this.set(handlers.reduce((n, h) => n + h.connections, 0));
    },
  });
  new Counter({
    name: `${p}tokens_total`,
    help: 'Tokens appended to jobs held by this process',
    registers,
    collect() {
      grow(this, 'tokens', stats()?.totals.tokens ?? 0);
    },
  });
  new Counter({
    name: `${p}jobs_created_total`,
    help: 'Jobs created by this process',
    registers,
    collect() {
      grow(this, 'created', stats()?.totals.created ?? 0);
    },
  });
  new Counter({
    name: `${p}jobs_ended_total`,
    help: 'Jobs held by this process that ended, by end state',
    labelNames: ['state'],
    registers,
    collect() {
      const t = stats()?.totals;
      for (const state of ['completed', 'failed', 'cancelled'] as const)
        grow(this, state, t?.[state] ?? 0, { state });
    },
  });
  new Counter({
    name: `${p}backend_errors_total`,
    help: 'Failed operations of the shared backend (each counted, though logged once per outage)',
    registers,
    collect() {
      grow(this, 'backend_errors', stats()?.backend?.errors ?? 0);
    },
  });
  new Gauge({
    name: `${p}backend_failing`,
    help: 'Kinds of backend operation failing now (0: healthy)',
    registers,
    collect() {
      this.set(stats()?.backend?.failing ?? 0);
    },
  });
  new Gauge({
    name: `${p}backend_pending_writes`,
    help: 'Writes sent to the shared backend and not yet answered',
    registers,
    collect() {
      this.set(stats()?.backend?.pendingWrites ?? 0);
    },
  });
  new Gauge({
    name: `${p}backend_lag_seconds`,
    help: 'Round trip of the last write batch to the shared backend',
    registers,
    collect() {
      this.set((stats()?.backend?.lagMs ?? 0) / 1000);
    },
  });

  return { register, metrics: () => register.metrics(), contentType: register.contentType };
}
