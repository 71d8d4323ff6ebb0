/**
 * The example inference server: the dual-call API over a simulated model, plus a live dashboard at `/`.
 * In memory by default; several processes share one registry when REDIS_URL is set.
 *
 *   HOST=127.0.0.1 PORT=8080 npm start
 */
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { JobRegistry, type RegistryBackend } from '../src/core/index.js';
import { createJobHandler, type JobHandler } from '../src/http/index.js';
import { parseModelRequest, simulateModel, type ModelRequest } from './model.js';

const here = dirname(fileURLToPath(import.meta.url));

/** A running example server. */
export interface RunningServer {
  url: string;
  server: Server;
  registry: JobRegistry<string, ModelRequest>;
  handler: JobHandler;
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

/** Starts the server; `port: 0` picks a free port. */
export async function startServer(
  options: {
    host?: string;
    port?: number;
    redisUrl?: string;
    /** Nodes of a Redis Cluster (`host:port`), instead of `redisUrl`. */
    redisClusterNodes?: string[];
    redisPrefix?: string;
    leaseMs?: number;
    retentionMs?: number;
    replayLimit?: number;
    blockMs?: number;
  } = {},
): Promise<RunningServer> {
  let backend: RegistryBackend | undefined;
  let cluster: { disconnect(): void } | undefined;
  if (options.redisUrl || options.redisClusterNodes?.length) {
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
      const client = new Cluster(nodes, { lazyConnect: true });
      cluster = client;
      backend = redisBackend({ redis: client, ...shared });
    } else backend = redisBackend({ url: options.redisUrl!, ...shared });
  }
  const registry = new JobRegistry<string, ModelRequest>({
    retention: options.retentionMs ?? 10 * 60_000,
    ...(options.replayLimit !== undefined ? { replayLimit: options.replayLimit } : {}),
    ...(backend ? { backend } : {}),
  });
  await registry.ready();
  const handler = createJobHandler(registry, {
    execute: (payload) => simulateModel(payload),
    startOn: 'create',
    parsePayload: parseModelRequest,
    cors: { origin: '*' },
  });
  const [clientJs, page, dashboardJs, css] = await Promise.all([
    bundleClient(),
    readFile(join(here, 'public/index.html'), 'utf8'),
    readFile(join(here, 'public/dashboard.js'), 'utf8'),
    readFile(join(here, 'public/style.css'), 'utf8'),
  ]);
  const assets: Record<string, [string, string]> = {
    '/': ['text/html; charset=utf-8', page],
    '/index.html': ['text/html; charset=utf-8', page],
    '/assets/client.js': ['text/javascript; charset=utf-8', clientJs],
    '/assets/dashboard.js': ['text/javascript; charset=utf-8', dashboardJs],
    '/assets/style.css': ['text/css; charset=utf-8', css],
  };
  const server = createServer((req, res) =>
    handler(req, res, () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const asset = assets[path];
      if (asset !== undefined && (req.method === 'GET' || req.method === 'HEAD')) {
        res.writeHead(200, { 'Content-Type': asset[0], 'Cache-Control': 'no-cache' });
        res.end(req.method === 'HEAD' ? undefined : asset[1]);
        return;
      }
      res.writeHead(404, { 'Content-Type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify({ error: { code: 'NOT_FOUND', message: `no route ${path.slice(0, 200)}` } }));
    }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, options.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : options.port;
  const host = options.host ?? '127.0.0.1';
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    server,
    registry,
    handler,
    close: () =>
      (closing ??= (async () => {
        // Streams first get their terminal event (cancelled: registry disposed), then connections close.
        await registry.dispose();
        cluster?.disconnect();
        handler.close();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })()),
  };
}

async function main(): Promise<void> {
  const port = Number(process.env.PORT ?? 8080);
  const host = process.env.HOST ?? '127.0.0.1';
  const redisUrl = process.env.REDIS_URL;
  const clusterNodes = process.env.REDIS_CLUSTER_NODES?.split(',').filter((n) => n !== '');
  const running = await startServer({
    host,
    port,
    ...(redisUrl ? { redisUrl } : {}),
    ...(clusterNodes?.length ? { redisClusterNodes: clusterNodes } : {}),
    ...(process.env.REDIS_PREFIX ? { redisPrefix: process.env.REDIS_PREFIX } : {}),
    ...(process.env.REDIS_LEASE_MS ? { leaseMs: Number(process.env.REDIS_LEASE_MS) } : {}),
    ...(process.env.RETENTION_MS ? { retentionMs: Number(process.env.RETENTION_MS) } : {}),
    ...(process.env.REPLAY_LIMIT ? { replayLimit: Number(process.env.REPLAY_LIMIT) } : {}),
    ...(process.env.REDIS_BLOCK_MS ? { blockMs: Number(process.env.REDIS_BLOCK_MS) } : {}),
  });
  console.log(
    `job-registry example server on ${running.url}/ (${clusterNodes?.length ? `redis cluster ${clusterNodes.join(',')}` : redisUrl ? `redis ${redisUrl}` : 'in memory'})`,
  );
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
