/**
 * The example inference server: the dual-call API (`/v1/inference`), OpenAI-compatible background
 * responses (`/v1/responses`) and the AI SDK chat routes (`/api/chat`) over a simulated model, a live dashboard at `/`, and what operators need:
 * `/healthz`, `/readyz`, `/metrics` (Prometheus), pino logs, and a graceful drain on SIGTERM. In memory by
 * default; several processes share one registry when REDIS_URL is set. API keys (API_KEYS) turn
 * authentication on; limits are on by default (see `config.ts` and the README's table).
 *
 *   API_KEYS=a-long-random-key HOST=127.0.0.1 PORT=8080 npm start
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { pathToFileURL } from 'node:url';
import type { Subscription } from 'rxjs';
import { JobRegistry, type RegistryBackend } from '../src/core/index.js';
import { createJobHandler, createResponsesHandler, requestPath, type JobHandler } from '../src/http/index.js';
import { apiKeys, type ApiKeys } from './api-keys.js';
import { loadAssets } from './assets.js';
import { ConfigError, optionsFromEnv, resolveLimits, type Limits, type ServerOptions } from './config.js';
import { createLogger, logJobFailures, type Logger } from './logger.js';
import { modelRequestParser, simulateModel, type ModelRequest } from './model.js';
import { probes, serverMetrics } from './operations.js';
import { responsesPayloadParser, simulateText } from './responses.js';
import { createDurableStreamsHandler } from '../src/durable-streams/index.js';
import { createChatHandler } from '../src/ai-sdk/index.js';
import { chatPayloadParser, simulateChat } from './chat.js';

export type { ServerOptions, Limits } from './config.js';
export type { Logger } from './logger.js';

/** How a drain ended: live jobs that finished in time, and those cancelled at its end. */
export interface DrainResult {
  finished: number;
  cancelled: number;
}

/** A running example server. */
export interface RunningServer {
  url: string;
  server: Server;
  registry: JobRegistry<string, ModelRequest>;
  /** The dual-call routes (`/v1/inference`, `/v1/jobs`, `/v1/events`). */
  handler: JobHandler;
  /** The OpenAI-compatible routes (`/v1/responses`). */
  responses: JobHandler;
  /** The AI SDK chat routes (`/api/chat`): each answer a job keyed by its chat id. */
  chat: JobHandler;
  /** The limits in force. */
  limits: Limits;
  /** Principal ids of the API keys (`key-…`); empty when the server is open. */
  principals: readonly string[];
  logger: Logger;
  /** True from `shutdown()` (or `close()`) on: `/readyz` and new jobs answer `503`. */
  readonly draining: boolean;
  /**
   * The graceful shutdown (SIGTERM): new jobs and event streams get `503 DRAINING` with `Retry-After`,
   * running jobs get up to `drainMs` (default: the `DRAIN_MS` limit) to finish and are then cancelled,
   * then everything closes. Streams of jobs held by other processes (Redis) end without a terminal event,
   * so their clients resume on another replica.
   */
  shutdown(drainMs?: number): Promise<DrainResult>;
  /** Closes at once: running jobs are cancelled (`registry disposed`). */
  close(): Promise<void>;
}

async function openBackend(
  options: ServerOptions,
  logger: Logger,
): Promise<{ backend?: RegistryBackend; cluster?: { disconnect(): void } }> {
  if (!options.redisUrl && !options.redisClusterNodes?.length) return {};
  const { redisBackend } = await import('../src/redis/index.js');
  const shared = {
    logger,
    ...(options.redisPrefix ? { prefix: options.redisPrefix } : {}),
    ...(options.leaseMs ? { leaseMs: options.leaseMs } : {}),
    ...(options.blockMs ? { blockMs: options.blockMs } : {}),
  };
  if (options.redisClusterNodes?.length) {
    const { Cluster } = await import('ioredis');
    const nodes = options.redisClusterNodes.map((n) => {
      const [host, port] = n.split(':');
      return { host: host || '127.0.0.1', port: Number(port) || 6379 };
    });
    const cluster = new Cluster(nodes, { lazyConnect: true });
    return { backend: redisBackend({ redis: cluster, ...shared }), cluster };
  }
  return { backend: redisBackend({ url: options.redisUrl!, ...shared }) };
}

/** Starts the server; `port: 0` picks a free port. */
export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? createLogger(options.logLevel);
  const limits = resolveLimits(options);
  const keys: ApiKeys | undefined = options.apiKeys?.length ? apiKeys(options.apiKeys) : undefined;
  if (options.corsCredentials === true && !options.corsOrigins?.length)
    throw new ConfigError('CORS_CREDENTIALS needs CORS_ORIGINS: the origins allowed to send credentials');
  const secret = options.streamTokenSecret;
  if (secret !== undefined && secret.length < 32)
    throw new ConfigError(
      `STREAM_TOKEN_SECRET must be at least 32 characters (got ${secret.length}); e.g. openssl rand -base64 32`,
    );

  const { backend, cluster } = await openBackend(options, logger);
  const registry = new JobRegistry<string, ModelRequest>({
    maxJobs: limits.maxJobs,
    concurrency: limits.concurrency,
    maxTokensPerJob: limits.maxTokensPerJob,
    claimTimeout: limits.claimTimeoutMs,
    replayLimit: limits.replayLimit,
    retention: limits.retentionMs,
    retentionGrace: limits.retentionGraceMs,
    logger,
    ...(backend ? { backend } : {}),
  });
  const failures: Subscription = logJobFailures(registry, logger);
  try {
    await registry.ready();
  } catch (e) {
    failures.unsubscribe();
    // The start failed (`e` says why, and goes to the caller); a failure to clean up is reported beside it.
    await registry
      .dispose()
      .catch((d: unknown) => logger.warn(`job-registry: dispose after a failed start: ${String(d)}`));
    cluster?.disconnect();
    throw e;
  }

  // What both APIs share: the keys, the limits, CORS, redaction and the logger.
  const common = {
    maxJobsPerPrincipal: limits.maxJobsPerPrincipal,
    maxStreamsPerJob: limits.maxStreamsPerJob,
    maxStreamsPerPrincipal: limits.maxStreamsPerPrincipal,
    maxConnections: limits.maxConnections,
    retryAfterSeconds: limits.retryAfterSeconds,
    exposeErrors: options.exposeErrors === true,
    logger,
    ...(options.corsOrigins?.length
      ? { cors: { origin: options.corsOrigins, credentials: options.corsCredentials === true } }
      : {}),
    ...(keys ? { authenticate: (req: IncomingMessage) => keys.authenticate(req) } : {}),
  };
  const modelLimits = { maxTokens: limits.maxTokensPerJob, maxDelayMs: limits.maxDelayMs };
  const handler = createJobHandler(registry, {
    ...common,
    execute: (payload) => simulateModel(payload),
    startOn: 'create',
    parsePayload: modelRequestParser(modelLimits),
    claimTimeout: limits.claimTimeoutMs,
    ...(keys
      ? {
          streamTokens: {
            secret: secret ?? randomBytes(32),
            ...(options.streamTokenTtlMs !== undefined ? { ttlMs: options.streamTokenTtlMs } : {}),
          },
        }
      : {}),
  });
  // OpenAI clients send their key as `Authorization: Bearer`, on streams too: no stream tokens here.
  const responses = createResponsesHandler(registry, {
    ...common,
    execute: (payload) => simulateText(payload),
    toPayload: responsesPayloadParser(modelLimits),
  });

  // The AI SDK's useChat: a chat's answer streams, resumes after a reload, and stops from any tab.
  const chat = createChatHandler(registry, {
    ...common,
    execute: (payload) => simulateChat(payload),
    toPayload: chatPayloadParser(modelLimits),
  });

  let draining = false;
  const probe = probes(registry, { draining: () => draining, retryAfterSeconds: limits.retryAfterSeconds });
  // The Durable Streams protocol over the same registry, under the same keys, quotas, limits and bodies.
  const streams = createDurableStreamsHandler(registry, {
    ...common,
    maxStreamBytes: limits.maxStreamBytes,
    idleTimeoutMs: limits.streamIdleMs,
  });
  const metrics = serverMetrics(registry, [handler, responses, streams, chat]);
  const serveAsset = await loadAssets();

  const fallback = (req: IncomingMessage, res: ServerResponse): void => {
    let path: string;
    try {
      path = requestPath(req.url ?? '/');
    } catch {
      return sendJson(res, 400, { error: { code: 'INVALID_PATH', message: 'malformed request path' } });
    }
    // The page, its assets and the probes are public: they hold no data.
    if (serveAsset(path, req, res)) return;
    const readOnly = req.method === 'GET' || req.method === 'HEAD';
    const answer = probe[path];
    if (answer !== undefined && readOnly) {
      void answer().then((a) => sendJson(res, a.status, a.body, req.method === 'HEAD', a.headers));
      return;
    }
    // Every other route needs a key, so a scan learns nothing about what exists.
    const isPublic = path.startsWith('/assets/') && readOnly;
    if (keys !== undefined && !isPublic && keys.authenticate(req) === undefined)
      return sendJson(
        res,
        401,
        { error: { code: 'UNAUTHENTICATED', message: 'this server needs Authorization: Bearer <API key>' } },
        false,
        { 'WWW-Authenticate': 'Bearer' },
      );
    // The Durable Streams protocol over the same registry: every job is a stream under its id.
    if (path === '/v1/stream' || path.startsWith('/v1/stream/')) return streams(req, res);
    if (path === '/metrics') {
      if (!readOnly)
        return sendJson(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'use GET' } }, false, {
          Allow: 'GET, HEAD',
        });
      metrics.metrics().then(
        (text) => {
          if (res.headersSent || res.destroyed) return;
          res.writeHead(200, { 'Content-Type': metrics.contentType, 'Cache-Control': 'no-store' });
          res.end(req.method === 'HEAD' ? undefined : text);
        },
        (e: unknown) => {
          logger.error(`inference-server: /metrics failed: ${e instanceof Error ? e.stack : String(e)}`);
          sendJson(res, 500, { error: { code: 'INTERNAL', message: 'metrics failed' } });
        },
      );
      return;
    }
    sendJson(res, 404, { error: { code: 'NOT_FOUND', message: `no route ${path.slice(0, 200)}` } });
  };

  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      // How often Node looks for connections past those timeouts; its default (30 s) would let a
      // slow-header client hold a socket far longer than headersTimeout.
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.headersTimeoutMs / 2))),
    },
    (req, res) =>
      handler(req, res, () => responses(req, res, () => chat(req, res, () => fallback(req, res)))),
  );
  if (Number.isFinite(limits.maxSockets)) server.maxConnections = limits.maxSockets;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, options.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : options.port;
  const host = options.host ?? '127.0.0.1';
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;

  if (keys === undefined) logger.warn(openWarning(where));
  else {
    logger.info(
      `API keys: ${keys.principals.length} (principals ${keys.principals.join(', ')}); ` +
        `every route but /, /assets/*, /healthz and /readyz needs Authorization: Bearer <key>`,
    );
    for (const id of keys.weak)
      logger.warn(`WARNING: the API key of ${id} is shorter than 16 characters; use a long random key`);
    if (secret === undefined)
      logger.warn(
        'STREAM_TOKEN_SECRET is not set: signed sse_url tokens use a random secret made at startup, so ' +
          'they stop working on restart and other replicas refuse them; give every replica the same secret',
      );
  }

  const refuseNewWork = (): void => {
    draining = true;
    handler.drain();
    responses.drain();
    streams.drain();
    chat.drain();
  };
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      refuseNewWork();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      failures.unsubscribe();
      // Jobs of this process still live end as cancelled (`registry disposed`), and their streams say so;
      // streams of jobs held by other processes end without a terminal event: their clients resume on
      // another replica. Event streams end too.
      await registry.dispose();
      cluster?.disconnect();
      handler.close();
      responses.close();
      streams.close();
      chat.close();
      server.closeIdleConnections();
      // A slow client gets a moment to take the last bytes of its stream; then every connection goes.
      const cutoff = setTimeout(() => server.closeAllConnections(), 1000);
      await closed;
      clearTimeout(cutoff);
    })());
  let shutting: Promise<DrainResult> | undefined;
  const shutdown = (drainMs: number = limits.drainMs): Promise<DrainResult> =>
    (shutting ??= (async () => {
      refuseNewWork();
      let result: DrainResult = { finished: 0, cancelled: 0 };
      try {
        if (!registry.isDisposed) result = await registry.drain(drainMs);
      } catch (e) {
        // close() ran meanwhile (a second signal): nothing is left to drain.
        if (!registry.isDisposed) throw e;
      }
      await close();
      return result;
    })());

  return {
    url: `http://${where}`,
    server,
    registry,
    handler,
    responses,
    chat,
    limits,
    principals: keys?.principals ?? [],
    logger,
    get draining() {
      return draining;
    },
    shutdown,
    close,
  };
}

/** The startup warning of a server without API keys. Loud on purpose. */
function openWarning(where: string): string {
  const bar = '!'.repeat(78);
  return [
    bar,
    '!! WARNING: NO API KEYS (API_KEYS is unset): THIS SERVER IS OPEN.',
    `!! Anyone who can reach ${where} can submit jobs and list, read, stream and`,
    '!! cancel EVERY job; per-key quotas (MAX_JOBS_PER_PRINCIPAL, MAX_STREAMS_PER_PRINCIPAL)',
    '!! do not apply. Fine on your own machine; never expose it like this.',
    '!! Set API_KEYS=<key1>,<key2> to require Authorization: Bearer <key>.',
    bar,
  ].join('\n');
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headOnly = false,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(headOnly ? undefined : text);
}

/** A Redis URL fit for a log line: its password, if any, masked. */
function withoutPassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password === '') return url;
    u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}

async function main(): Promise<void> {
  const options = optionsFromEnv(process.env);
  const logger = createLogger(options.logLevel);
  const running = await startServer({ ...options, logger });
  const where = options.redisClusterNodes?.length
    ? `redis cluster ${options.redisClusterNodes.join(',')}`
    : options.redisUrl
      ? `redis ${withoutPassword(options.redisUrl)}`
      : 'in memory';
  logger.info(`job-registry example server on ${running.url}/ (${where})`);
  let signals = 0;
  const stop = (signal: NodeJS.Signals): void => {
    if (++signals > 1) {
      logger.warn(`${signal} again: cancelling the running jobs now`);
      void running.close();
      return;
    }
    logger.info(
      `${signal}: draining: new jobs get 503, running jobs have up to ${running.limits.drainMs} ms to finish`,
    );
    running.shutdown().then(
      ({ finished, cancelled }) => {
        logger.info(`${signal}: drained (${finished} finished, ${cancelled} cancelled); exiting`);
        process.exit(0);
      },
      (e: unknown) => {
        logger.error(`${signal}: shutdown failed: ${e instanceof Error ? e.stack : String(e)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e: unknown) => {
    console.error(`job-registry example server failed to start: ${(e as Error).message}`);
    process.exit(1);
  });
}
