/**
 * dispose() leaves nothing behind that holds the process: a program whose registries are on Redis exits
 * as soon as it has disposed of them. ioredis's disconnect() arms a 2 s timer that only the socket's next
 * 'close' clears; a connection disconnected once more after it closed (a blocking reader its tailer had
 * closed already), or cut on its way to ready (on a cluster, the node a blocking read has just begun to
 * use), left that timer behind.
 */
import { clusterNodes, dropClusterPrefix } from '../helpers/cluster.js';
import { describeIf } from '../helpers/collect.js';
import { runReport } from '../helpers/processes.js';
import { REDIS_URL, dropPrefix, haveRedis, testPrefix } from '../helpers/redis.js';

const available = await haveRedis();
const cluster = await clusterNodes();

interface Report {
  /** What the reader got (nothing when disposed at once). */
  tokens: string[];
  /** How long the process lived on after its last dispose() resolved. */
  livedOnMs: number;
}

/** Runs test/helpers/dispose-exit.ts in a process of its own; its report once it has exited. */
const runChild = (env: Record<string, string>): Promise<Report> =>
  runReport<Report>('test/helpers/dispose-exit.ts', env);

// Closing a few sockets takes milliseconds; the timer held the process 2 s.
const PROMPTLY_MS = 1000;

describeIf(available)('a process exits once its registries on Redis are disposed', () => {
  const prefix = testPrefix('dispose-exit');
  afterAll(() => dropPrefix(prefix));

  test('after a job was written and read', async () => {
    const report = await runChild({ REDIS_URL, REDIS_PREFIX: prefix });
    expect(report.tokens).toEqual(['one', 'two']);
    expect(report.livedOnMs).toBeLessThan(PROMPTLY_MS);
  }, 30_000);

  test('disposed as soon as ready', async () => {
    const report = await runChild({ REDIS_URL, REDIS_PREFIX: prefix, AT_ONCE: '1' });
    expect(report.livedOnMs).toBeLessThan(PROMPTLY_MS);
  }, 30_000);
  test('disposed after its start failed, Redis unreachable', async () => {
    const report = await runChild({ REDIS_PREFIX: prefix, UNREACHABLE: '1' });
    expect(report.tokens).toEqual(['refused']);
    expect(report.livedOnMs).toBeLessThan(PROMPTLY_MS);
  }, 30_000);
});

describeIf(cluster !== undefined)('a process exits once its registries on Redis Cluster are disposed', () => {
  const prefix = testPrefix('dispose-exit-cluster');
  const env = (): Record<string, string> => ({
    REDIS_CLUSTER_NODES: cluster!.nodes.map((n) => `${n.host}:${n.port}`).join(','),
    CLUSTER: '1',
    REDIS_PREFIX: prefix,
  });
  afterAll(async () => {
    await dropClusterPrefix(cluster!.nodes, prefix);
    await cluster!.stop();
  });

  test('after a job was written and read', async () => {
    const report = await runChild(env());
    expect(report.tokens).toEqual(['one', 'two']);
    expect(report.livedOnMs).toBeLessThan(PROMPTLY_MS);
  }, 30_000);

  test('disposed as soon as ready, the blocking reads still connecting to their nodes', async () => {
    // Whether a node's connection is still on its way to ready when dispose() comes is a race: three
    // processes make it near certain that some are.
    const reports = await Promise.all([1, 2, 3].map(() => runChild({ ...env(), AT_ONCE: '1' })));
    expect(reports.map((r) => r.livedOnMs < PROMPTLY_MS)).toEqual([true, true, true]);
  }, 30_000);
});
