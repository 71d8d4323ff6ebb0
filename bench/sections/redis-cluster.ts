/**
 * Redis Cluster: token throughput through the registry on a 3-master cluster against a single Redis, in
 * the same run. P producer processes, each with one reader process following its jobs; many jobs in
 * parallel, tokens emitted in batches per tick. Two clusters: one with a replica per master
 * (REDIS_CLUSTER_NODES when set, else a private one) and a private one of three masters alone, the
 * like-for-like match of the single node, the standalone Redis at REDIS_URL (it has no replica). Private
 * clusters are started with scripts/redis-cluster.sh on free ports and stopped at the end.
 */
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { QUICK, figure, ratio, report } from '../lib.js';
import { waitFor, peerArgs } from '../ipc.js';
import { freeClusterBase } from '../../scripts/cluster-ports.js';

const REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const PRODUCERS = 3;
const JOBS = 192;
const TOTAL = QUICK ? 10_000 : 100_000;
const PER_JOB = Math.ceil(TOTAL / JOBS);
const BATCH = 5;
const SHARDS = 8;
const REPS = QUICK ? 1 : 3;
/** A run that has not finished by then (tokens lost, a reader that never ends) fails instead of hanging. */
const DEADLINE_MS = QUICK ? 60_000 : 180_000;
/** One Redis; 3 masters with a replica each; 3 masters alone. */
const MODES = ['single', 'cluster', 'bare'] as const;
type Mode = (typeof MODES)[number];
const peer = new URL('../redis-cluster-peer.ts', import.meta.url).pathname;
const script = new URL('../../scripts/redis-cluster.sh', import.meta.url).pathname;
const run$ = promisify(execFile);
const now = (): number => performance.timeOrigin + performance.now();

/** Jobs of each producer: JOBS split as evenly as possible. */
const jobsOf = (p: number): number => Math.floor(JOBS / PRODUCERS) + (p < JOBS % PRODUCERS ? 1 : 0);

/** CPU time (user + sys, ms) each server has used so far. */
async function serverCpuMs(servers: Redis[]): Promise<number[]> {
  const out: number[] = [];
  for (const r of servers) {
    const info = await r.info('cpu');
    out.push(
      (Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1])) *
        1000,
    );
  }
  return out;
}

interface Run {
  rate: number;
  clientCpuPer1k: number;
  serverCpuPer1k: number;
  /** CPU per 1,000 tokens (of all the run's tokens) of the busiest master: what bounds Redis's share. */
  busiestMasterCpuPer1k: number;
}

async function run(
  mode: Mode,
  kind: 'single' | 'cluster',
  target: string,
  servers: Redis[],
  masters: boolean[],
): Promise<Run> {
  const prefix = `jrbench:${process.pid}:cl:${mode}:${Math.random().toString(36).slice(2, 8)}:`;
  const spawn = (role: string): ChildProcess =>
    fork(peer, [role, kind, target, prefix, String(SHARDS)], {
      execArgv: peerArgs(['--import', 'tsx']),
      stdio: 'inherit',
    });
  const producers = Array.from({ length: PRODUCERS }, () => spawn('producer'));
  const readers = Array.from({ length: PRODUCERS }, () => spawn('reader'));
  const all = [...producers, ...readers];
  let timedOut = false;
  const deadline = setTimeout(() => {
    timedOut = true;
    for (const c of all) c.kill('SIGKILL');
  }, DEADLINE_MS);
  try {
    await Promise.all(all.map((c) => waitFor(c, 'up')));
    const idLists = await Promise.all(
      producers.map((p, i) => {
        const got = waitFor<{ ids: string[] }>(p, 'ids');
        p.send({ type: 'start', jobs: jobsOf(i), perJob: PER_JOB, batch: BATCH });
        return got.then((m) => m.ids);
      }),
    );
    await Promise.all(
      readers.map((r, i) => {
        const ready = waitFor(r, 'ready');
        r.send({ type: 'read', ids: idLists[i], perJob: PER_JOB });
        return ready;
      }),
    );
    await new Promise((r) => setTimeout(r, QUICK ? 300 : 1000));
    const results = readers.map((r) =>
      waitFor<{ tokens: number; first: number; last: number; cpuMs: number; problems: string[] }>(
        r,
        'result',
      ),
    );
    const sent = producers.map((p) => waitFor<{ cpuMs: number }>(p, 'sent'));
    const serverBefore = await serverCpuMs(servers);
    for (const c of all) c.send({ type: 'go' });
    const got = await Promise.all(results);
    const done = await Promise.all(sent);
    const serverAfter = await serverCpuMs(servers);
    const tokens = got.reduce((a, r) => a + r.tokens, 0);
    const problems = got.flatMap((r) => r.problems);
    if (problems.length > 0 || tokens !== JOBS * PER_JOB)
      throw new Error(
        `redis-cluster ${mode}: readers got ${tokens} of ${JOBS * PER_JOB} tokens` +
          (problems.length > 0 ? `; first problems:\n  ${problems.slice(0, 10).join('\n  ')}` : ''),
      );
    for (const c of all) c.send({ type: 'stop' });
    await Promise.all(all.map((c) => new Promise((res) => c.exitCode !== null || c.once('exit', res))));
    const first = Math.min(...got.map((r) => r.first));
    const last = Math.max(...got.map((r) => r.last));
    const clientCpu = [...got, ...done].reduce((a, r) => a + r.cpuMs, 0);
    const used = serverAfter.map((ms, i) => ms - serverBefore[i]!);
    return {
      rate: tokens / ((last - first) / 1000),
      clientCpuPer1k: clientCpu / (tokens / 1000),
      serverCpuPer1k: used.reduce((a, b) => a + b, 0) / (tokens / 1000),
      busiestMasterCpuPer1k: Math.max(...used.filter((_, i) => masters[i])) / (tokens / 1000),
    };
  } catch (e) {
    if (!timedOut) throw e;
    throw new Error(`redis-cluster ${mode}: no result within ${DEADLINE_MS / 1000} s; peers killed`, {
      cause: e,
    });
  } finally {
    clearTimeout(deadline);
    for (const c of all) c.kill('SIGKILL');
  }
}

async function removeKeys(mode: Mode, nodes: Redis[]): Promise<void> {
  const pattern = `jrbench:${process.pid}:cl:${mode}:*`;
  for (const node of nodes) {
    const keys = await node.keys(pattern);
    // Keys of different slots cannot go in one DEL on a cluster node.
    const p = node.pipeline();
    for (const k of keys) p.del(k);
    await p.exec();
  }
}

const notes: string[] = [];
const single = new Redis(REDIS, { lazyConnect: true, maxRetriesPerRequest: 0 });
single.on('error', () => undefined);
try {
  await single.connect();
  const info = await single.info('server');
  if (!info.includes('redis_mode:standalone')) throw new Error(`${REDIS} is not a standalone Redis`);
  if (!/connected_slaves:0\b/.test(await single.info('replication')))
    throw new Error(
      `${REDIS} has replicas: the like-for-like match of three masters alone needs one that has none`,
    );
} catch (e) {
  if (process.env.CI === 'true') throw new Error(`Redis is required in CI: ${REDIS}: ${String(e)}`);
  console.warn(`SKIPPING the Redis Cluster benchmark: no standalone Redis at ${REDIS}: ${String(e)}`);
  report({ section: 'redis-cluster', figures: [], ratios: [], notes: [`skipped: no Redis at ${REDIS}`] });
  process.exit(0);
}

/** Private clusters started here: base port and replicas per master, stopped at the end. */
const started: Array<{ base: number; replicas: 0 | 1 }> = [];
async function stopOne(base: number, replicas: 0 | 1): Promise<void> {
  await run$('bash', [script, 'stop', String(base)], {
    env: { ...process.env, REDIS_CLUSTER_REPLICAS: String(replicas) },
  }).catch((e: unknown) =>
    console.warn(`redis-cluster bench: stopping the private cluster on ${base} failed: ${String(e)}`),
  );
}
const stopPrivate = async (): Promise<void> => {
  for (const { base, replicas } of started.splice(0)) await stopOne(base, replicas);
};
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => void stopPrivate().finally(() => process.exit(1)));

/** A private cluster could not be started: outside CI the section is skipped. */
class ClusterStartError extends Error {}

/**
 * Starts a private cluster; its nodes as `host:port,...`. Another process may take a port between the
 * check and the start: tries a few bases.
 */
async function startPrivate(replicas: 0 | 1): Promise<string> {
  const env = { ...process.env, REDIS_CLUSTER_REPLICAS: String(replicas) };
  for (let attempt = 1; ; attempt++) {
    const base = await freeClusterBase(50);
    try {
      await run$('bash', [script, 'start', String(base)], { timeout: 90_000, env });
      started.push({ base, replicas });
      return Array.from({ length: 3 * (1 + replicas) }, (_, i) => `127.0.0.1:${base + i}`).join(',');
    } catch (e) {
      await stopOne(base, replicas);
      if (attempt >= 3) throw new ClusterStartError(`could not start a cluster: ${String(e)}`, { cause: e });
    }
  }
}

/** A cluster's nodes, replicas too (they replay the masters' writes on the same cores), for their CPU time. */
async function members(nodes: string): Promise<{ client: Cluster; servers: Redis[]; masters: boolean[] }> {
  const client = new Cluster(
    nodes.split(',').map((hp) => {
      const [host, port] = hp.split(':');
      return { host: host!, port: Number(port) };
    }),
    { lazyConnect: true },
  );
  client.on('error', () => undefined);
  let table: string;
  try {
    await client.connect();
    table = (await client.cluster('NODES')) as string;
  } catch (e) {
    client.disconnect();
    throw e;
  }
  const list = table
    .split('\n')
    .filter((l) => l.trim() !== '' && !/fail|handshake|noaddr/.test(l.split(' ')[2] ?? ''))
    .map((l) => {
      const [, addr, flags] = l.split(' ') as [string, string, string];
      const hp = addr.split('@')[0]!;
      const at = hp.lastIndexOf(':');
      return { host: hp.slice(0, at), port: Number(hp.slice(at + 1)), master: flags.includes('master') };
    });
  const servers = list.map((m) => {
    const c = new Redis(m.port, m.host, { maxRetriesPerRequest: 0 });
    c.on('error', () => undefined);
    return c;
  });
  return { client, servers, masters: list.map((m) => m.master) };
}

const runs: Record<Mode, Run[]> = { single: [], cluster: [], bare: [] };
const pairs: number[] = [];
const capacity: number[] = [];
const replicated: number[] = [];
let skipped = false;
const clusters: Partial<Record<'cluster' | 'bare', Awaited<ReturnType<typeof members>> & { nodes: string }>> =
  {};
try {
  let nodes = process.env.REDIS_CLUSTER_NODES;
  if (nodes === undefined || nodes === '') {
    nodes = await startPrivate(1);
    notes.push(`cluster: a private 3 masters + 3 replicas started by scripts/redis-cluster.sh on ${nodes}`);
  } else notes.push(`cluster: REDIS_CLUSTER_NODES=${nodes}`);
  const bare = await startPrivate(0);
  notes.push(
    `bare cluster: a private 3 masters, no replicas, started by scripts/redis-cluster.sh on ${bare}`,
  );
  clusters.cluster = { ...(await members(nodes)), nodes };
  clusters.bare = { ...(await members(bare)), nodes: bare };
  const replicaCount = clusters.cluster.masters.filter((m) => !m).length;
  notes.push(
    `${clusters.cluster.masters.length - replicaCount} masters and ${replicaCount} replicas in the replicated cluster; the single node is the standalone Redis at ${REDIS}, with no replica`,
  );
  for (let rep = 0; rep < REPS; rep++) {
    const order = rep % 2 === 0 ? MODES : [...MODES].reverse();
    const got: Partial<Record<Mode, Run>> = {};
    for (const mode of order) {
      const t = now();
      const c = mode === 'single' ? undefined : clusters[mode]!;
      try {
        got[mode] =
          c === undefined
            ? await run(mode, 'single', REDIS, [single], [true])
            : await run(mode, 'cluster', c.nodes, c.servers, c.masters);
      } finally {
        await removeKeys(mode, c === undefined ? [single] : c.client.nodes('master'));
      }
      runs[mode].push(got[mode]);
      console.warn(
        `redis-cluster: ${mode} ${Math.round(got[mode].rate)} tokens/s (${((now() - t) / 1000).toFixed(1)} s)`,
      );
    }
    pairs.push(got.cluster!.rate / got.single!.rate);
    capacity.push(got.single!.busiestMasterCpuPer1k / got.bare!.busiestMasterCpuPer1k);
    replicated.push(got.single!.busiestMasterCpuPer1k / got.cluster!.busiestMasterCpuPer1k);
  }
} catch (e) {
  if (process.env.CI === 'true' || !(e instanceof ClusterStartError)) throw e;
  console.warn(`SKIPPING the Redis Cluster benchmark: ${e.message}`);
  report({ section: 'redis-cluster', figures: [], ratios: [], notes: ['skipped: no Redis Cluster'] });
  skipped = true;
} finally {
  for (const c of Object.values(clusters)) {
    for (const r of c.servers) r.disconnect();
    c.client.disconnect();
  }
  single.disconnect();
  await stopPrivate();
}

const NAMES: Record<Mode, string> = {
  single: 'single Redis',
  cluster: '3-master Redis Cluster, a replica each',
  bare: '3-master Redis Cluster, no replicas',
};
const load = `${PRODUCERS} producers -> ${PRODUCERS} readers, ${JOBS} jobs, ${JOBS * PER_JOB} tokens`;
if (!skipped)
  report({
    section: 'redis-cluster',
    figures: [
      ...MODES.flatMap((m) => [
        figure(
          `${load}: ${NAMES[m]}`,
          'tokens/s',
          runs[m].map((r) => r.rate),
        ),
        figure(
          `${load}: CPU of producers + readers per 1,000 tokens, ${NAMES[m]}`,
          'ms',
          runs[m].map((r) => r.clientCpuPer1k),
        ),
        figure(
          `${load}: Redis server CPU per 1,000 tokens, ${NAMES[m]}${m === 'cluster' ? ' (masters + replicas)' : ''}`,
          'ms',
          runs[m].map((r) => r.serverCpuPer1k),
        ),
        figure(
          `${load}: CPU per 1,000 tokens of the busiest ${m === 'single' ? 'node' : 'master'}, ${NAMES[m]}`,
          'ms',
          runs[m].map((r) => r.busiestMasterCpuPer1k),
        ),
      ]),
      // On two cores the clients and six Redis processes share the machine: delivered throughput
      // cannot show what the cluster adds, so it is a figure, and the capacity below is the goal.
      figure(`${load}: delivered tokens/s, replicated cluster vs single Redis`, 'x', pairs),
      figure(
        `${load}: Redis capacity, 3 masters with a replica each vs 1 without (busiest node's CPU per token)`,
        'x',
        replicated,
      ),
    ],
    ratios: [
      ratio(
        `${load}: Redis capacity, 3 masters vs 1, none replicated (busiest node's CPU per token)`,
        capacity,
        2.5,
        true,
        'single Redis node',
        "derived, not a throughput: how much more the cluster carries before its busiest master fills a core, from each node's CPU per token in the same runs (clients on their own machines)",
      ),
    ],
    notes: [
      ...notes,
      `shards ${SHARDS}; ${BATCH} tokens per job per producer tick; throughput = tokens / (last job end - first token) over all readers; ${REPS} repetition(s), order alternating`,
      `all Redis processes share this machine's ${cpus().length} cores with the producers and readers (and the cluster's replicas), so the cluster cannot scale past the cores; load average at the end ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    ],
  });
