import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { waitFor } from './collect.js';

/** Whether a test may start Redis servers of its own. In CI it must: a missing binary fails the suite. */
export function haveRedisServer(what: string): boolean {
  if (spawnSync('redis-server', ['--version']).status === 0) return true;
  if (process.env.CI === 'true') throw new Error(`redis-server is required in CI for ${what}`);
  console.warn(`SKIPPING ${what}: no redis-server binary on PATH`);
  return false;
}

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A Redis of a test's own, which it may stop, restart (keeping or losing its data) and flush. */
export interface PrivateRedis {
  url: string;
  port: number;
  admin: Redis;
  /** Stops it; `keepData: false` also empties its directory, as a restart without persistence would. */
  stop(keepData?: boolean): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** Starts a Redis with an append-only file (`appendfsync always`), so a stop and start keeps every write. */
export async function privateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  let dir = mkdtempSync(join(tmpdir(), 'jr-redis-'));
  let server: ChildProcess | undefined;
  const admin = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: null });
  admin.on('error', () => undefined);
  const start = async (): Promise<void> => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', ''];
    args.push('--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir);
    server = spawn('redis-server', args, { stdio: 'ignore' });
    const probe = new Redis(port, '127.0.0.1', {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    probe.on('error', () => undefined);
    await waitFor(
      async () => {
        try {
          await probe.connect();
          return (await probe.ping()) === 'PONG';
        } catch {
          return false;
        }
      },
      10_000,
      'redis up',
    );
    probe.disconnect();
  };
  const stop = async (keepData = true): Promise<void> => {
    const s = server;
    if (s === undefined || s.exitCode !== null) return;
    await new Promise((r) => (s.once('exit', r), s.kill('SIGKILL')));
    if (!keepData) {
      rmSync(dir, { recursive: true, force: true });
      dir = mkdtempSync(join(tmpdir(), 'jr-redis-'));
    }
  };
  await start();
  await admin.connect();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    admin,
    stop,
    start,
    close: async () => {
      admin.disconnect();
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
