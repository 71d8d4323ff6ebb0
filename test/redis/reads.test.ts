/**
 * Lookups and replays of jobs held elsewhere go through a read connection of their own: a process whose
 * writes are queued up waiting for Redis (here: CLIENT PAUSE WRITE while it streams a job) still answers
 * `findJob` and replays another process's job at once, instead of behind every queued write.
 */
import { Redis } from 'ioredis';
import type { JobRegistry } from '../../src/core/index.js';
import { collect, describeIf, waitFor } from '../helpers/collect.js';
import { REDIS_URL, clientList, haveRedis, quietLogger, registriesOn, testPrefix } from '../helpers/redis.js';

const available = await haveRedis();
const prefix = testPrefix('reads');

describeIf(available)('redis backend: reads never wait behind queued writes', () => {
  const on = registriesOn(prefix, { leaseMs: 10_000, blockMs: 1000, logger: quietLogger });
  const admin = on.admin;
  const make = (redis?: Redis): JobRegistry<string> => on.make(redis === undefined ? {} : { redis });
  // b's command connection, named to be found in CLIENT LIST.
  const cmd = new Redis(REDIS_URL, { lazyConnect: true, connectionName: `${prefix}b-cmd` });
  afterAll(async () => {
    await admin.call('CLIENT', 'UNPAUSE').catch(() => undefined);
    await on.close();
    cmd.disconnect();
  });

  test('findJob and a replay of a job held elsewhere answer while this process has writes held up', async () => {
    const a = make();
    const b = make(cmd);
    await Promise.all([a.ready(), b.ready()]);
    const done = a.createJob();
    for (let i = 0; i < 50; i++) a.emit(done, `t${i}`);
    a.updateState(done, 'completed');
    await a.flush();
    const busy = b.createJob();
    await b.flush();

    await admin.call('CLIENT', 'PAUSE', '3000', 'WRITE');
    const paused = Date.now();
    try {
      // b's writes now wait for Redis: its command connection is held up behind them.
      for (let i = 0; i < 1000; i++) b.emit(busy, `w${i}`);
      await waitFor(
        async () =>
          (await clientList(admin)).some((c) => c.name === `${prefix}b-cmd` && c.flags?.includes('b')),
        2000,
        "b's command connection held up",
      );
      const snap = await b.findJob(done);
      const replay = collect(b.tokens$(done));
      await replay.done;
      const took = Date.now() - paused;
      expect(snap?.state).toBe('completed');
      expect(replay.completed).toBe(true);
      expect(replay.values.map((v) => v.token)).toEqual(Array.from({ length: 50 }, (_, i) => `t${i}`));
      // Well inside the pause: neither waited for b's queued writes.
      expect(took).toBeLessThan(2000);
    } finally {
      await admin.call('CLIENT', 'UNPAUSE');
    }
    await b.flush();
    expect(b.getJob(busy)?.tokenCount).toBe(1000);
  }, 20_000);
});
