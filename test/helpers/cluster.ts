import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Cluster, type ClusterOptions } from 'ioredis';

/** One node of a Redis Cluster. */
export interface ClusterNodeAddress {
  host: string;
  port: number;
}

/** A Redis Cluster a test file may use; `stop()` shuts it down if the helper started it. */
export interface TestCluster {
  nodes: ClusterNodeAddress[];
  stop(): Promise<void>;
}

import { freeClusterBase } from '../../scripts/cluster-ports.js';

const SCRIPT = fileURLToPath(new URL('../../scripts/redis-cluster.sh', import.meta.url));
const run = promisify(execFile);
const inCI = (): boolean => process.env.CI === 'true';

/**
 * The Redis Cluster for this test file.
 *
 * - `REDIS_CLUSTER_NODES` set (`host:port,host:port,...`, as `.ci/run` exports it): that cluster, if it
 *   answers with `cluster_state:ok`; `stop()` does nothing. If it does not answer: throws in CI
 *   (`CI=true`), else warns and resolves undefined.
 * - Not set: starts a private six-node cluster with `scripts/redis-cluster.sh` on a free random base
 *   port in 20000-40000; `stop()` shuts it down. Without `redis-server` on PATH: throws in CI, else
 *   warns and resolves undefined.
 */
export async function clusterNodes(): Promise<TestCluster | undefined> {
  const configured = process.env.REDIS_CLUSTER_NODES?.trim();
  if (configured) {
    const nodes = parseNodes(configured);
    const problem = await clusterProblem(nodes);
    if (problem === undefined) return { nodes, stop: async () => undefined };
    const message = `REDIS_CLUSTER_NODES=${configured} does not answer as a healthy cluster: ${problem}`;
    if (inCI()) throw new Error(`Redis Cluster is required in CI but ${message}`);
    console.warn(
      `SKIPPING Redis Cluster tests: ${message}\n` +
        '  (start one with `bash scripts/redis-cluster.sh start 7001`, or unset REDIS_CLUSTER_NODES ' +
        'to let each test file start a private cluster)',
    );
    return undefined;
  }

  const missing = ['redis-server', 'redis-cli'].filter(
    (bin) => spawnSync(bin, ['--version'], { stdio: 'ignore' }).status !== 0,
  );
  if (missing.length > 0) {
    const message = `no ${missing.join(' / ')} on PATH to start a private cluster, and REDIS_CLUSTER_NODES is not set`;
    if (inCI()) throw new Error(`Redis Cluster is required in CI but there is ${message}`);
    console.warn(`SKIPPING Redis Cluster tests: ${message}`);
    return undefined;
  }
  return startPrivateCluster();
}

/**
 * An ioredis Cluster client for tests: lazy (call `connect()`), short connect timeouts, and a bounded
 * retry strategy so that a dead cluster fails a test instead of hanging it. `options` override these.
 */
export function clusterClient(nodes: readonly ClusterNodeAddress[], options: ClusterOptions = {}): Cluster {
  const { redisOptions, ...rest } = options;
  return new Cluster(
    nodes.map(({ host, port }) => ({ host, port })),
    {
      lazyConnect: true,
      slotsRefreshTimeout: 2000,
      clusterRetryStrategy: (times) => (times > 10 ? null : Math.min(100 * times, 1000)),
      ...rest,
      redisOptions: { connectTimeout: 2000, ...redisOptions },
    },
  );
}

/** Deletes every key under a prefix on every master (SCAN + DEL, one key per DEL: no cross-slot calls). */
export async function dropClusterPrefix(
  nodes: readonly ClusterNodeAddress[],
  prefix: string,
): Promise<number> {
  const client = clusterClient(nodes);
  let deleted = 0;
  try {
    await client.connect();
    const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    await Promise.all(
      client.nodes('master').map(async (node) => {
        let cursor = '0';
        do {
          const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
          cursor = next;
          if (keys.length === 0) continue;
          const pipeline = node.pipeline();
          for (const key of keys) pipeline.del(key);
          for (const [err, n] of (await pipeline.exec()) ?? []) {
            if (err) throw err;
            deleted += Number(n);
          }
        } while (cursor !== '0');
      }),
    );
  } finally {
    client.disconnect();
  }
  return deleted;
}

function parseNodes(list: string): ClusterNodeAddress[] {
  return list.split(',').map((entry) => {
    const at = entry.trim().lastIndexOf(':');
    const host = entry.trim().slice(0, at);
    const port = Number(entry.trim().slice(at + 1));
    if (at <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535)
      throw new Error(`REDIS_CLUSTER_NODES: "${entry}" is not host:port`);
    return { host, port };
  });
}

/** Undefined when the cluster answers with `cluster_state:ok`, else what is wrong. */
async function clusterProblem(nodes: readonly ClusterNodeAddress[]): Promise<string | undefined> {
  // disconnectTimeout: ioredis arms a timer of that length on a stream that was already refused and
  // never clears it, which would keep jest alive 2 s after a run against a dead cluster.
  const client = clusterClient(nodes, {
    clusterRetryStrategy: () => null,
    redisOptions: { connectTimeout: 2000, disconnectTimeout: 100 },
  });
  let lastError: unknown;
  client.on('error', (e: unknown) => (lastError = e));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5000);
  });
  try {
    const info = await Promise.race([client.connect().then(() => client.cluster('INFO')), timeout]);
    const state = /cluster_state:(\w+)/.exec(info)?.[1];
    return state === 'ok' ? undefined : `cluster_state:${state ?? '?'}`;
  } catch (e) {
    const reason = lastError instanceof Error ? ` (${lastError.message})` : '';
    return `${e instanceof Error ? e.message : String(e)}${reason}`;
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}

/**
 * Starts a private cluster with `scripts/redis-cluster.sh` on a free random base port: three masters,
 * each with a replica unless `replicas` is 0. `stop()` shuts it down.
 */
export async function startPrivateCluster(replicas: 0 | 1 = 1): Promise<TestCluster> {
  const env = { ...process.env, REDIS_CLUSTER_REPLICAS: String(replicas) };
  const failures: string[] = [];
  for (let attempt = 0; attempt < 5; attempt++) {
    const base = await freeClusterBase(20, (busy) => failures.push(`base ${busy}: ports busy`));
    try {
      await run('bash', [SCRIPT, 'start', String(base)], { timeout: 90_000, env });
    } catch (e) {
      const err = e as { stderr?: string; message?: string };
      failures.push(`base ${base}: ${(err.stderr || err.message || String(e)).trim()}`);
      // The script cleans up after a failed start; this covers a start cut short by the timeout.
      await run('bash', [SCRIPT, 'stop', String(base)], { timeout: 30_000, env }).catch(() => undefined);
      continue;
    }
    const nodes = Array.from({ length: 3 * (1 + replicas) }, (_, i) => ({
      host: '127.0.0.1',
      port: base + i,
    }));
    let stopped: Promise<void> | undefined;
    return {
      nodes,
      stop: () =>
        (stopped ??= run('bash', [SCRIPT, 'stop', String(base)], { timeout: 30_000, env }).then(
          () => undefined,
        )),
    };
  }
  throw new Error(`could not start a private Redis Cluster:\n${failures.join('\n')}`);
}
