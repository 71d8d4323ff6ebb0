import type { Redis } from 'ioredis';
import { Connection } from '../../src/redis/connection.js';
import { REDIS_URL } from '../helpers/redis.js';

// No Redis needed: the connections are made lazily and never connect.
describe('redis connections made from a url: reconnect attempts', () => {
  const open: Connection[] = [];
  const make = (reconnectMaxMs?: number): Connection => {
    const c = new Connection(
      { url: REDIS_URL, reconnectMaxMs },
      'jr:test-reconnect',
      [0],
      () => undefined,
      () => undefined,
    );
    open.push(c);
    return c;
  };
  const dups: Redis[] = [];
  afterAll(async () => {
    await Promise.all(open.map((c) => c.close()));
    for (const d of dups) d.disconnect();
  });
  const waits = (client: Redis): number[] =>
    [1, 4, 10, 40, 1000].map((times) => client.options.retryStrategy!(times) as number);

  test('wait at most reconnectMaxMs between attempts, on every connection (duplicates too)', () => {
    const c = make(375);
    expect(waits(c.cmd as Redis)).toEqual([50, 200, 375, 375, 375]);
    expect(waits(c.reads as Redis)).toEqual([50, 200, 375, 375, 375]);
    const lease = c.duplicate('lease') as Redis;
    dups.push(lease);
    expect(waits(lease)).toEqual([50, 200, 375, 375, 375]);
  });

  test("without reconnectMaxMs: ioredis's own pace (2 s at most)", () => {
    expect(waits(make().cmd as Redis)).toEqual([50, 200, 500, 2000, 2000]);
  });

  test("a connection that meets Redis loading its data asks again every 100 ms (duplicates too), not after Redis's estimate", () => {
    const c = make(375);
    const lease = c.duplicate('lease') as Redis;
    dups.push(lease);
    for (const client of [c.cmd as Redis, c.reads as Redis, lease])
      expect(client.options.maxLoadingRetryTime).toBe(100);
  });
});
