/**
 * The published Durable Streams conformance suite against this library, on the memory backend and on
 * Redis. It takes about a minute per backend, so it runs when CONFORMANCE=1
 * (`CONFORMANCE=1 npm test -- test/durable-streams`), or directly with
 * `npx tsx test/durable-streams/conformance.ts [--redis]`.
 */
import { haveRedis, REDIS_URL, testPrefix, dropPrefix } from '../helpers/redis.js';
import { runConformance } from './conformance.js';
import { startDurableServer } from './server.js';

// Its test runs 100,000 `expect` calls after the reads, about 3.5 s of the suite's 5 s limit alone: it
// times out when the machine is busy, whatever the server.
const SLOW_BY_ITSELF = ['Chunking and Large Payloads should handle chunk-size pagination correctly'];

// Run by `npm run test:durable` (jest.config.ts leaves this file out of `npm test`).
describe('Durable Streams conformance suite', () => {
  test.each(['memory', 'redis'] as const)(
    '%s: every test passes',
    async (backend) => {
      if (backend === 'redis' && !(await haveRedis())) return;
      const prefix = testPrefix('ds-conformance');
      // A 3 s long-poll: the suite's offset=now long-poll tests wait for the 204 within their 5 s limit.
      const streams = { longPollTimeoutMs: 3000, cors: { origin: '*' } };
      const server = await startDurableServer(
        backend === 'memory' ? { streams } : { redisUrl: REDIS_URL, prefix, streams },
      );
      try {
        const r = await runConformance(server.url);
        expect(r.failed.filter((f) => !SLOW_BY_ITSELF.includes(f))).toEqual([]);
        expect(r.passed).toBeGreaterThanOrEqual(r.total - r.skipped - SLOW_BY_ITSELF.length);
      } finally {
        await server.close();
        if (backend === 'redis') await dropPrefix(prefix);
      }
    },
    600_000,
  );
});
