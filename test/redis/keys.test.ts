/** Keyed jobs on one Redis: at most one live job per key across processes (see test/helpers/keyed.ts). */
import { Redis } from 'ioredis';
import { JobRegistry } from '../../src/core/index.js';
import { Keys, redisBackend } from '../../src/redis/index.js';
import { describeIf } from '../helpers/collect.js';
import { keyedContract, recorder } from '../helpers/keyed.js';
import { REDIS_URL, dropPrefix, haveRedis, testPrefix } from '../helpers/redis.js';

const available = await haveRedis();
const prefix = testPrefix('keys');
const LEASE_MS = 1500;

describeIf(available)('redis backend: keyed jobs', () => {
  const admin = new Redis(REDIS_URL, { lazyConnect: true });
  afterAll(async () => {
    await dropPrefix(prefix);
    admin.disconnect();
  });

  keyedContract('one Redis', () => ({
    make: (options = {}, logger = recorder()) =>
      new JobRegistry<string>({
        ...options,
        backend: redisBackend({ url: REDIS_URL, prefix, leaseMs: LEASE_MS, logger }),
      }),
    keys: new Keys(prefix, 8),
    admin,
    leaseMs: LEASE_MS,
    ownerEnv: { REDIS_URL, KEYED_PREFIX: prefix, KEYED_LEASE_MS: String(LEASE_MS) },
  }));
});
