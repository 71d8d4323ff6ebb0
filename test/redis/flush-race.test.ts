/**
 * A live owner's job is never reaped because of a flush the sweeper has not noticed yet (chaos seed 23):
 * the flush lands between a sweep's look at the epoch (the data-loss marker) and its look at the leases,
 * right after the owner created a job and before it renewed its lease. The interleaving is driven through
 * the sweeper's command connection, so it is the same on every run.
 */
import { Redis } from 'ioredis';
import { JobRegistry } from '../../src/core/index.js';
import { Keys, redisBackend } from '../../src/redis/index.js';
import { describeIf, waitFor } from '../helpers/collect.js';
import { REDIS_URL, dropPrefix, haveRedis, quietLogger, testPrefix } from '../helpers/redis.js';

const available = await haveRedis();
const LEASE_MS = 1500;

describeIf(available)("a flush between a sweep's look at the epoch and at the leases", () => {
  const prefix = testPrefix('flush-race');
  const K = new Keys(prefix, 8);
  const admin = new Redis(REDIS_URL);
  const made: Array<JobRegistry<string>> = [];
  const clients: Redis[] = [];
  afterAll(async () => {
    await Promise.all(made.map((r) => r.dispose()));
    for (const c of clients) c.disconnect();
    await dropPrefix(prefix);
    admin.disconnect();
  });

  /** Deletes every key under the prefix: what a FLUSHALL does to this registry's data. */
  async function flush(): Promise<void> {
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
  }

  test("does not end a live owner's job: the sweeper sees the loss before it takes a missing lease for a death", async () => {
    const a = new JobRegistry<string>({
      backend: redisBackend({ url: REDIS_URL, prefix, leaseMs: LEASE_MS, logger: quietLogger }),
    });
    made.push(a);
    await a.ready();
    // The sweeper, through a command connection whose replies the test can hold.
    const client = new Redis(REDIS_URL);
    clients.push(client);
    const b = new JobRegistry<string>({
      backend: redisBackend({ redis: client, prefix, leaseMs: LEASE_MS, logger: quietLogger }),
    });
    made.push(b);
    await b.ready();
    const started = Date.now();
    let stage: 'waiting' | 'flushed' | 'checked' = 'waiting';
    let jobId = '';
    let epochReads = 0;
    const send = client.sendCommand.bind(client);
    client.sendCommand = ((command: {
      name: string;
      args: unknown[];
      resolve: (v: unknown) => void;
      promise: Promise<unknown>;
    }) => {
      const key = String(command.args[0]);
      if (command.name === 'get' && key === K.epoch) {
        epochReads++;
        // Once the sweeper has been calm for a lease, its next look at the epoch finds it whole; then,
        // before the sweep goes on: the flush, and a job the owner creates right after it.
        if (stage === 'waiting' && Date.now() - started > 2 * LEASE_MS) {
          stage = 'flushed';
          const resolve = command.resolve;
          command.resolve = (value) =>
            void (async () => {
              await flush();
              jobId = a.createJob();
              a.emit(jobId, 'first');
              await a.flush();
              resolve(value);
            })();
        }
      }
      // The sweep's look at the owner's lease: the owner has not renewed it since the flush.
      if (command.name === 'exists' && stage === 'flushed' && key.startsWith(K.owner(''))) {
        stage = 'checked';
        void admin.del(key).then(() => send(command as never));
        return command.promise;
      }
      return send(command as never);
    }) as typeof client.sendCommand;

    await waitFor(() => stage === 'checked', 15_000, 'the sweep that looks at the leases after the flush');
    // The owner puts its lease back within a third of a lease; the sweeper sweeps on meanwhile.
    const reads = epochReads;
    await waitFor(() => epochReads >= reads + 4, 10_000, 'four more sweeps');
    expect(a.getJobState(jobId)).toBe('running');
    expect((await b.findJob(jobId))?.state).toBe('running');
    a.updateState(jobId, 'completed');
    await a.flush();
  }, 30_000);
});
