import { JobRegistry } from '../../src/core/index.js';
import { redisBackend } from '../../src/redis/index.js';
import { collect, describeIf, sleep, waitFor } from '../helpers/collect.js';
import { haveRedisServer, privateRedis, type PrivateRedis } from '../helpers/private-redis.js';

// A Redis of its own (with an append-only file, so a restart keeps the data), restarted mid-stream.
const available = haveRedisServer('the Redis restart test');

describeIf(available)('a Redis restart mid-stream', () => {
  let redis: PrivateRedis;
  let port: number;
  const start = (): Promise<void> => redis.start();
  const stop = (): Promise<void> => redis.stop();
  beforeAll(async () => {
    redis = await privateRedis();
    port = redis.port;
  }, 20_000);
  afterAll(() => redis.close());

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
