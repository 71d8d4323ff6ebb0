/**
 * Token counts of live jobs are shared through the shard event streams as one entry per shard per
 * interval (not one per job), and every count reaches the other processes.
 */
import type { JobProgress } from '../../src/core/index.js';
import { Keys } from '../../src/redis/index.js';
import { describeIf, waitFor } from '../helpers/collect.js';
import { haveRedis, quietLogger, registriesOn, testPrefix } from '../helpers/redis.js';

const available = await haveRedis();
const prefix = testPrefix('progress');
const K = new Keys(prefix, 8);

describeIf(available)('redis backend: shared progress', () => {
  const on = registriesOn(prefix, {
    leaseMs: 2000,
    blockMs: 1000,
    logger: quietLogger,
    progressIntervalMs: 200,
  });
  afterAll(() => on.close());

  test('the counts of 60 live jobs go out as at most one entry per shard per interval, and all arrive', async () => {
    const a = on.make();
    const b = on.make();
    await Promise.all([a.ready(), b.ready()]);
    const seen = new Map<string, number>();
    const sub = b.progress$.subscribe((p: JobProgress) => seen.set(p.jobId, p.tokenCount));
    const ids = Array.from({ length: 60 }, () => a.createJob());
    ids.forEach((id, i) => {
      for (let t = 0; t <= i; t++) a.emit(id, `t${t}`);
    });
    await waitFor(() => ids.every((id, i) => seen.get(id) === i + 1), 5000, 'every count on b');
    sub.unsubscribe();
    let entries = 0;
    for (let shard = 0; shard < 8; shard++)
      for (const [, fields] of await on.admin.xrange(K.events(shard), '-', '+'))
        if (fields[1] === 'progress') entries++;
    expect(entries).toBeGreaterThan(0);
    expect(entries).toBeLessThanOrEqual(8);
  });
});
