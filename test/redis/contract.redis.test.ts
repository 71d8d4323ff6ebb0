import { JobRegistry } from '../../src/core/index.js';
import { redisBackend } from '../../src/redis/index.js';
import { describeIf } from '../helpers/collect.js';
import { registryContract } from '../helpers/contract.js';
import { REDIS_URL, dropPrefix, haveRedis, testPrefix } from '../helpers/redis.js';

const available = await haveRedis();
const prefix = testPrefix('contract');
afterAll(() => dropPrefix(prefix));

describeIf(available)('redis backend', () => {
  registryContract('redis, two registries', async (options) => {
    const make = () =>
      new JobRegistry<string>({
        ...options,
        backend: redisBackend({ url: REDIS_URL, prefix, leaseMs: 2000 }),
      });
    const a = make();
    const b = make();
    await Promise.all([a.ready(), b.ready()]);
    return { a, b, close: async () => void (await Promise.all([a.dispose(), b.dispose()])) };
  });
});
