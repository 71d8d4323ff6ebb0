import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { JobRegistry } from '../../src/core/index.js';
import { redisBackend } from '../../src/redis/index.js';
import { collect, describeIf, sleep, waitFor } from '../helpers/collect.js';
import { haveRedis } from '../helpers/redis.js';

// A Redis of its own (with an append-only file, so a restart keeps the data), restarted mid-stream.
function haveRedisServer(): boolean {
  if (spawnSync('redis-server', ['--version']).status === 0) return true;
  if (process.env.CI === 'true') throw new Error('redis-server is required in CI for the restart test');
  console.warn('SKIPPING the Redis restart test: no redis-server binary on PATH');
  return false;
}
const available = (await haveRedis()) && haveRedisServer();

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describeIf(available)('a Redis restart mid-stream', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jr-redis-'));
  let port: number;
  let server: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    server = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--dir',
        dir,
      ],
      { stdio: 'ignore' },
    );
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
  const stop = async (): Promise<void> => {
    const s = server!;
    await new Promise((r) => (s.once('exit', r), s.kill('SIGTERM')));
  };
  beforeAll(async () => {
    port = await freePort();
    await start();
  }, 20_000);
  afterAll(async () => {
    if (server && server.exitCode === null) await stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('readers resume from the last entry they saw: nothing lost, nothing repeated', async () => {
    const url = `redis://127.0.0.1:${port}`;
    const quiet = { warn: () => undefined, error: () => undefined };
    const a = new JobRegistry<string>({
      backend: redisBackend({ url, prefix: 'rs:', logger: quiet, blockMs: 500 }),
    });
    const b = new JobRegistry<string>({
      backend: redisBackend({ url, prefix: 'rs:', logger: quiet, blockMs: 500 }),
    });
    await Promise.all([a.ready(), b.ready()]);
    const id = a.createJob();
    await a.flush();
    const r = collect(b.tokens$(id));
    for (let i = 0; i < 50; i++) a.emit(id, `t${i}`);
    await a.flush();
    await waitFor(() => r.values.length === 50, 5000, 'first half');
    await stop();
    // Written while Redis is down: queued (within maxPendingWrites), sent when it is back.
    for (let i = 50; i < 100; i++) a.emit(id, `t${i}`);
    await sleep(300);
    await start();
    a.updateState(id, 'completed');
    await a.flush();
    await r.done;
    expect(r.completed).toBe(true);
    expect(r.values.map((v) => v.token)).toEqual(Array.from({ length: 100 }, (_, i) => `t${i}`));
    await Promise.all([a.dispose(), b.dispose()]);
  }, 30_000);
});
