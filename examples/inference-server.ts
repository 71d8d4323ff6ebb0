/**
 * The example inference server: the dual-call API over a simulated model, plus a live dashboard at `/`.
 * In memory by default; several processes share one registry when REDIS_URL is set. API keys (API_KEYS)
 * turn authentication on; limits are on by default (see `config.ts` and the README's table).
 *
 *   API_KEYS=a-long-random-key HOST=127.0.0.1 PORT=8080 npm start
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Subscription } from 'rxjs';
import { JobRegistry, type RegistryBackend } from '../src/core/index.js';
import { createJobHandler, requestPath, type JobHandler } from '../src/http/index.js';
import { apiKeys, type ApiKeys } from './api-keys.js';
import { ConfigError, optionsFromEnv, resolveLimits, type Limits, type ServerOptions } from './config.js';
import { consoleLogger, logJobFailures } from './logger.js';
import { modelRequestParser, simulateModel, type ModelRequest } from './model.js';

export type { ServerOptions, Limits } from './config.js';
export type { Logger } from './logger.js';

const here = dirname(fileURLToPath(import.meta.url));

/** A running example server. */
export interface RunningServer {
  url: string;
  server: Server;
  registry: JobRegistry<string, ModelRequest>;
  handler: JobHandler;
  /** The limits in force. */
  limits: Limits;
  /** Principal ids of the API keys (`key-…`); empty when the server is open. */
  principals: readonly string[];
  close(): Promise<void>;
}

/** Builds the dashboard's client bundle once (the project's own client, bundled for the browser). */
async function bundleClient(): Promise<string> {
  const esbuild = await import('esbuild');
  const out = await esbuild.build({
    entryPoints: [join(here, '../src/client/index.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2020',
    write: false,
    minify: true,
  });
  return out.outputFiles[0]!.text;
}

async function openBackend(
  options: ServerOptions,
): Promise<{ backend?: RegistryBackend; cluster?: { disconnect(): void } }> {
  if (!options.redisUrl && !options.redisClusterNodes?.length) return {};
  const { redisBackend } = await import('../src/redis/index.js');
  const shared = {
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
  const logger = options.logger ?? consoleLogger;
  const limits = resolveLimits(options);
  const keys: ApiKeys | undefined = options.apiKeys?.length ? apiKeys(options.apiKeys) : undefined;
  if (options.corsCredentials === true && !options.corsOrigins?.length)
    throw new ConfigError('CORS_CREDENTIALS needs CORS_ORIGINS: the origins allowed to send credentials');
  const secret = options.streamTokenSecret;
  if (secret !== undefined && secret.length < 32)
    throw new ConfigError(
      `STREAM_TOKEN_SECRET must be at least 32 characters (got ${secret.length}); e.g. openssl rand -base64 32`,
    );

  const { backend, cluster } = await openBackend(options);
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
    await registry.dispose().catch(() => undefined);
    cluster?.disconnect();
    throw e;
  }
  const handler = createJobHandler(registry, {
    execute: (payload) => simulateModel(payload),
    startOn: 'create',
    parsePayload: modelRequestParser({ maxTokens: limits.maxTokensPerJob, maxDelayMs: limits.maxDelayMs }),
    claimTimeout: limits.claimTimeoutMs,
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
    ...(keys
      ? {
          authenticate: (req: IncomingMessage) => keys.authenticate(req),
          streamTokens: {
            secret: secret ?? randomBytes(32),
            ...(options.streamTokenTtlMs !== undefined ? { ttlMs: options.streamTokenTtlMs } : {}),
          },
        }
      : {}),
  });

  const [clientJs, page, dashboardJs, css] = await Promise.all([
    bundleClient(),
    readFile(join(here, 'public/index.html'), 'utf8'),
    readFile(join(here, 'public/dashboard.js'), 'utf8'),
    readFile(join(here, 'public/style.css'), 'utf8'),
  ]);
  // The page and its assets are public (they hold no data); so are the probes.
  const assets: Record<string, [string, string]> = {
    '/': ['text/html; charset=utf-8', page],
    '/index.html': ['text/html; charset=utf-8', page],
    '/assets/client.js': ['text/javascript; charset=utf-8', clientJs],
    '/assets/dashboard.js': ['text/javascript; charset=utf-8', dashboardJs],
    '/assets/style.css': ['text/css; charset=utf-8', css],
  };

  let closing: Promise<void> | undefined;
  const probes: Record<string, () => Promise<number>> = {
    '/healthz': async () => 200,
    '/readyz': async () => {
      if (closing !== undefined) return 503;
      try {
        await withTimeout(registry.ready(), 2000);
        return 200;
      } catch {
        return 503;
      }
    },
  };

  const fallback = (req: IncomingMessage, res: ServerResponse): void => {
    let path: string;
    try {
      path = requestPath(req.url ?? '/');
    } catch {
      return sendJson(res, 400, { error: { code: 'INVALID_PATH', message: 'malformed request path' } });
    }
    const readOnly = req.method === 'GET' || req.method === 'HEAD';
    const asset = assets[path];
    if (asset !== undefined && readOnly) {
      res.writeHead(200, {
        'Content-Type': asset[0],
        'Cache-Control': 'no-cache',
        'X-Content-Type-Options': 'nosniff',
        ...(path === '/' || path === '/index.html' ? { 'X-Frame-Options': 'DENY' } : {}),
      });
      res.end(req.method === 'HEAD' ? undefined : asset[1]);
      return;
    }
    const probe = probes[path];
    if (probe !== undefined && readOnly) {
      void probe().then((status) => sendJson(res, status, { ok: status === 200 }, req.method === 'HEAD'));
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
    (req, res) => handler(req, res, () => fallback(req, res)),
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

  return {
    url: `http://${where}`,
    server,
    registry,
    handler,
    limits,
    principals: keys?.principals ?? [],
    close: () =>
      (closing ??= (async () => {
        // Streams first get their terminal event (cancelled: registry disposed), then connections close.
        failures.unsubscribe();
        await registry.dispose();
        cluster?.disconnect();
        handler.close();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })()),
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

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timed out')), ms);
    }),
  ]).finally(() => clearTimeout(timer));
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
  const running = await startServer(options);
  const where = options.redisClusterNodes?.length
    ? `redis cluster ${options.redisClusterNodes.join(',')}`
    : options.redisUrl
      ? `redis ${withoutPassword(options.redisUrl)}`
      : 'in memory';
  console.log(`job-registry example server on ${running.url}/ (${where})`);
  const stop = (signal: string): void => {
    console.log(`${signal}: shutting down`);
    running.close().then(
      () => process.exit(0),
      (e: unknown) => {
        console.error(e);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e: unknown) => {
    console.error(`job-registry example server failed to start: ${(e as Error).message}`);
    process.exit(1);
  });
}
