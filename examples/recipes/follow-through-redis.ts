/**
 * Recipe: follow a job that another process holds, through Redis.
 *
 * Two registries share one Redis (and one key prefix), as two processes behind a load balancer would; here
 * both live in this script to keep it short. The worker creates and runs the job; the follower knows
 * only its id (as a client that got it from the POST would) and follows its `state$` and `tokens$`, with
 * full replay from the first token. Both are disposed at the end, so the script exits by itself.
 *
 * Needs Redis: REDIS_URL (default redis://127.0.0.1:6379). Run: npx tsx examples/recipes/follow-through-redis.ts
 */
import { randomBytes } from 'node:crypto';
import { lastValueFrom, map, tap, toArray } from 'rxjs';
import { JobRegistry } from '../../src/core/index.js';
import { redisBackend } from '../../src/redis/index.js';
import { model } from './model.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
// A prefix of its own, so the recipe never meets another registry's jobs in a shared Redis.
const prefix = process.env.REDIS_PREFIX ?? `recipe:${randomBytes(4).toString('hex')}:`;
// Each registry gets its own backend (its own connections), as each process would.
const shared = () => ({
  backend: redisBackend({ url, prefix }),
  retention: { seconds: 10 }, // finished jobs' keys expire from Redis 10 s after their end
});

const worker = new JobRegistry<string, string>(shared());
const follower = new JobRegistry<string, string>(shared());
try {
  await Promise.all([worker.ready(), follower.ready()]);

  const id = worker.createJob({ payload: 'every process sharing the Redis sees the same job' });
  worker
    .executeAndStream(id, (sentence) => model(sentence!, { delayMs: 30 }))
    .subscribe({ error: () => undefined });
  console.log(`worker: created and runs the job; held here: ${worker.hasJob(id)}`);
  console.log(`follower: held here: ${follower.hasJob(id)}; following it through Redis`);

  // Subscribed now, replayed from the first token and the current state, then live until the job ends.
  const states = lastValueFrom(
    follower.state$(id).pipe(
      map(({ state }) => state),
      toArray(),
    ),
  );
  await lastValueFrom(
    follower.tokens$(id).pipe(tap(({ seq, token }) => console.log(`follower: #${seq} ${token}`))),
    { defaultValue: undefined },
  );
  console.log(`follower: state$ went ${(await states).join(' -> ')}`);

  const snapshot = await follower.findJob(id);
  console.log(`follower: findJob says ${snapshot?.state} with ${snapshot?.tokenCount} tokens`);
} finally {
  await Promise.all([worker.dispose(), follower.dispose()]);
}
