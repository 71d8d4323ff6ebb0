/**
 * The harness's hands on Redis: a private redis-server it can restart, flush and pause (single mode), or
 * the masters of a Redis Cluster it can pause and whose clients it can kill (cluster mode). Every call is
 * bounded in time.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { freePort } from '../helpers/private-redis.js';

export interface NodeAddress {
  host: string;
  port: number;
}

/** A client connection as `CLIENT LIST` shows it. */
export interface ClientInfo {
  id: string;
  name: string;
  addr: string;
}

export interface RedisControl {
  readonly mode: 'single' | 'cluster';
  /** Env that points an example server at this Redis. */
  serverEnv(): Record<string, string>;
  /** One field of a hash (e.g. a job's owner), or undefined. */
  hget(key: string, field: string): Promise<string | undefined>;
  /** Client connections on node `index` (a master in cluster mode). */
  clientList(index: number): Promise<ClientInfo[]>;
  clientKill(index: number, ids: string[]): Promise<number>;
  pause(index: number, ms: number): Promise<void>;
  /** How many nodes faults can target (1 in single mode, the masters in cluster mode). */
  nodeCount(): number;
  nodeName(index: number): string;
  /** Every key under a prefix (all masters). */
  scan(prefix: string): Promise<string[]>;
  /** PTTL of each key (-1: no TTL, -2: gone). */
  pttl(keys: string[]): Promise<number[]>;
  close(): Promise<void>;
}

export { freePort };

/** Rejects after `ms` with a message naming `what`. */
export function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function parseClientList(text: string): ClientInfo[] {
  const out: ClientInfo[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const f: Record<string, string> = {};
    for (const part of line.trim().split(' ')) {
      const i = part.indexOf('=');
      if (i > 0) f[part.slice(0, i)] = part.slice(i + 1);
    }
    if (f.id !== undefined) out.push({ id: f.id, name: f.name ?? '', addr: f.addr ?? '' });
  }
  return out;
}

function quietClient(port: number, host = '127.0.0.1'): Redis {
  const r = new Redis(port, host, {
    lazyConnect: true,
    connectTimeout: 2000,
    maxRetriesPerRequest: 1,
    retryStrategy: () => 100,
    enableOfflineQueue: true,
    connectionName: 'chaos-harness',
  });
  r.on('error', () => undefined);
  return r;
}

async function scanNode(node: Redis, prefix: string): Promise<string[]> {
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await within(5000, 'SCAN', node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000));
    cursor = next;
    keys.push(...found);
  } while (cursor !== '0');
  return keys;
}

export function haveRedisServer(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** A private redis-server with an append-only file (fsync always), on a free port in a temp dir. */
export class OwnRedis implements RedisControl {
  readonly mode = 'single' as const;
  readonly dir = mkdtempSync(join(tmpdir(), 'jr-chaos-redis-'));
  port = 0;
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private admin: Redis | undefined;
  private logTail = '';

  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    mkdirSync(this.dir, { recursive: true });
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--dir',
        this.dir,
        '--protected-mode',
        'no',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout!.on('data', (c: Buffer) => (this.logTail = (this.logTail + c.toString()).slice(-4000)));
    child.stderr!.on('data', (c: Buffer) => (this.logTail = (this.logTail + c.toString()).slice(-4000)));
    this.proc = child;
    this.exited = new Promise((r) => child.once('exit', () => r()));
    const probe = quietClient(this.port);
    try {
      const end = Date.now() + 10_000;
      for (;;) {
        try {
          if (probe.status === 'wait') await probe.connect();
          if ((await within(1000, 'PING', probe.ping())) === 'PONG') break;
        } catch {
          // not up yet
        }
        if (child.exitCode !== null || Date.now() > end)
          throw new Error(`redis-server on port ${this.port} did not start: ${this.logTail}`);
        await sleep(50);
      }
    } finally {
      probe.disconnect();
    }
    if (this.admin === undefined) {
      this.admin = quietClient(this.port);
      await this.admin.connect();
    }
  }

  private cmd(): Redis {
    if (this.admin === undefined) throw new Error('redis not started');
    return this.admin;
  }

  serverEnv(): Record<string, string> {
    return { REDIS_URL: `redis://127.0.0.1:${this.port}` };
  }

  /** Stops Redis: `SHUTDOWN` (AOF flushed), `SHUTDOWN NOSAVE`, or a SIGKILL (fsync always: acknowledged writes stay). */
  async stop(how: 'shutdown' | 'nosave' | 'sigkill'): Promise<void> {
    const child = this.proc;
    if (child === undefined || child.exitCode !== null) return;
    if (how === 'sigkill') child.kill('SIGKILL');
    else {
      const r = quietClient(this.port);
      try {
        await within(2000, 'connect', r.connect());
        await within(3000, 'SHUTDOWN', r.call('SHUTDOWN', ...(how === 'nosave' ? ['NOSAVE'] : []))).catch(
          () => undefined,
        );
      } catch {
        child.kill('SIGKILL');
      } finally {
        r.disconnect();
      }
    }
    const ok = await within(8000, 'redis exit', this.exited).then(
      () => true,
      () => false,
    );
    if (!ok) {
      child.kill('SIGKILL');
      await within(5000, 'redis exit after SIGKILL', this.exited).catch(() => undefined);
    }
  }

  /** Empties the data directory (a restart after this starts with nothing). */
  wipe(): void {
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir, { recursive: true });
  }

  async flushAll(): Promise<void> {
    await within(5000, 'FLUSHALL', this.cmd().flushall());
  }

  async hget(key: string, field: string): Promise<string | undefined> {
    return (await within(3000, 'HGET', this.cmd().hget(key, field))) ?? undefined;
  }

  async clientList(): Promise<ClientInfo[]> {
    return parseClientList(String(await within(3000, 'CLIENT LIST', this.cmd().call('CLIENT', 'LIST'))));
  }

  async clientKill(_index: number, ids: string[]): Promise<number> {
    let n = 0;
    for (const id of ids)
      n += Number(
        await within(3000, 'CLIENT KILL', this.cmd().call('CLIENT', 'KILL', 'ID', id)).catch(() => 0),
      );
    return n;
  }

  async pause(_index: number, ms: number): Promise<void> {
    await within(3000, 'CLIENT PAUSE', this.cmd().call('CLIENT', 'PAUSE', String(ms), 'ALL'));
  }

  nodeCount(): number {
    return 1;
  }

  nodeName(): string {
    return `redis:${this.port}`;
  }

  async scan(prefix: string): Promise<string[]> {
    return scanNode(this.cmd(), prefix);
  }

  async pttl(keys: string[]): Promise<number[]> {
    return Promise.all(keys.map((k) => within(3000, 'PTTL', this.cmd().pttl(k))));
  }

  async close(): Promise<void> {
    this.admin?.disconnect();
    this.admin = undefined;
    await this.stop('nosave');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The masters of a Redis Cluster (the cluster itself is started and stopped by test/helpers/cluster.ts). */
export class ClusterRedis implements RedisControl {
  readonly mode = 'cluster' as const;
  private client: Cluster;
  private masters: Redis[] = [];
  private masterAddrs: NodeAddress[] = [];

  constructor(private readonly nodes: NodeAddress[]) {
    this.client = new Cluster(
      nodes.map(({ host, port }) => ({ host, port })),
      {
        lazyConnect: true,
        slotsRefreshTimeout: 2000,
        clusterRetryStrategy: (times) => (times > 20 ? null : Math.min(100 * times, 1000)),
        redisOptions: { connectTimeout: 2000, connectionName: 'chaos-harness' },
      },
    );
    this.client.on('error', () => undefined);
  }

  async start(): Promise<void> {
    await within(10_000, 'cluster connect', this.client.connect());
    const slots = (await within(5000, 'CLUSTER SLOTS', this.client.cluster('SLOTS'))) as unknown as Array<
      [number, number, [string, number, ...unknown[]], ...unknown[]]
    >;
    const seen = new Map<string, NodeAddress>();
    for (const s of slots) {
      const [host, port] = s[2];
      seen.set(`${host}:${port}`, { host: host === '' ? '127.0.0.1' : host, port });
    }
    this.masterAddrs = [...seen.values()].sort((a, b) => a.port - b.port);
    this.masters = this.masterAddrs.map(({ host, port }) => quietClient(port, host));
    await Promise.all(this.masters.map((m) => within(5000, 'master connect', m.connect())));
  }

  serverEnv(): Record<string, string> {
    return { REDIS_CLUSTER_NODES: this.nodes.map((n) => `${n.host}:${n.port}`).join(',') };
  }

  async hget(key: string, field: string): Promise<string | undefined> {
    return (await within(3000, 'HGET', this.client.hget(key, field))) ?? undefined;
  }

  async clientList(index: number): Promise<ClientInfo[]> {
    const m = this.masters[index]!;
    return parseClientList(String(await within(3000, 'CLIENT LIST', m.call('CLIENT', 'LIST'))));
  }

  async clientKill(index: number, ids: string[]): Promise<number> {
    const m = this.masters[index]!;
    let n = 0;
    for (const id of ids)
      n += Number(await within(3000, 'CLIENT KILL', m.call('CLIENT', 'KILL', 'ID', id)).catch(() => 0));
    return n;
  }

  async pause(index: number, ms: number): Promise<void> {
    await within(3000, 'CLIENT PAUSE', this.masters[index]!.call('CLIENT', 'PAUSE', String(ms), 'ALL'));
  }

  nodeCount(): number {
    return this.masters.length;
  }

  nodeName(index: number): string {
    const a = this.masterAddrs[index];
    return a === undefined ? `master#${index}` : `master ${a.host}:${a.port}`;
  }

  async scan(prefix: string): Promise<string[]> {
    const all = await Promise.all(this.masters.map((m) => scanNode(m, prefix)));
    return all.flat();
  }

  async pttl(keys: string[]): Promise<number[]> {
    return Promise.all(keys.map((k) => within(3000, 'PTTL', this.client.pttl(k))));
  }

  async close(): Promise<void> {
    for (const m of this.masters) m.disconnect();
    this.client.disconnect();
  }
}
