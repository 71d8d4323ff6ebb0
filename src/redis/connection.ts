import { Redis, type ChainableCommander, type Cluster } from 'ioredis';
import { BackendError, messageOf } from '../core/errors.js';
import {
  CREATE,
  FIRST_TOKEN,
  REMOVE,
  RESTORE_ENDED,
  RUN_CHECK,
  TOKEN_RUNS,
  TOKENS,
  TRANSITION,
} from './scripts.js';

export type RedisClient = Redis | Cluster;
export type Pipeline = ChainableCommander;

/** The scripts of scripts.ts, as ioredis commands (on a client and on its pipelines). */
export interface ScriptCommands {
  jrCreate(...args: (string | number)[]): unknown;
  /** CREATE of a keyed job: two more keys (the key record, the token stream) and four more arguments. */
  jrCreateKeyed(...args: (string | number)[]): unknown;
  jrTransition(...args: (string | number)[]): unknown;
  jrRestoreEnded(...args: (string | number)[]): unknown;
  jrRemove(...args: (string | number)[]): unknown;
  jrTokens(...args: (string | number)[]): unknown;
  /** FIRST_TOKEN: the job hash, the time. */
  jrFirstToken(key: string, at: string): unknown;
  /** TOKEN_RUNS: the number of keys first. */
  jrTokenRuns(...args: (string | number)[]): unknown;
  /** RUN_CHECK: one key. */
  jrRunCheck(key: string, first: string, last: string): Promise<[string | null, number, string | null]>;
}

/** How often a client made here asks again whether Redis finished loading its data (see below). */
const LOADING_RETRY_MS = 100;

/** How long closing lets a connection on its way to ready get there (see `disconnect`). */
const HANDSHAKE_WAIT_MS = 1000;

/**
 * ioredis's `disconnectTimeout` for the connections made here: after `disconnect()` ends a socket, how
 * long it waits for the socket to close before it destroys it. Its timer is armed even when the socket
 * closed already (a connection between two reconnect attempts), and then nothing clears it: it holds the
 * process that long after dispose(). A closing backend has nothing left to send (its writes were answered
 * first), so it need not wait ioredis's default 2 s for Redis to close its side.
 */
const DISCONNECT_MS = 200;

/**
 * The command connection (a `Redis` or a `Cluster`, given or made from a URL), the scripts defined on
 * it, a read connection, and duplicates of it for blocking reads. Job writes go through `cmd`; lookups
 * and replays of jobs held elsewhere go through `reads`, so a burst of writes waiting for Redis never
 * holds a reader up behind it. On a cluster a pipeline goes to one master and carries every shard it
 * serves, and each shard has its own blocking XREAD; on a single Redis, one of each carries all shards.
 */
export class Connection {
  readonly cmd: RedisClient;
  /** Lookups, replays and wake-ups: commands whose order against this process's job writes does not matter. */
  readonly reads: RedisClient;
  readonly cluster: boolean;
  readonly where: string;
  private readonly owned: boolean;
  private readonly blocking: RedisClient[] = [];
  private closed = false;

  constructor(
    options: {
      url?: string | undefined;
      redis?: RedisClient | undefined;
      /**
       * Longest wait between two reconnect attempts of the connections made here from `url` (ioredis's
       * default is 2 s). An owner must be back within a lease once Redis is, or others take its jobs.
       */
      reconnectMaxMs?: number | undefined;
    },
    private readonly name: string,
    /** The cluster slot of each shard. */
    private readonly slots: readonly number[],
    private readonly onError: (e: unknown) => void,
    private readonly onReady: () => void,
  ) {
    if (options.redis !== undefined) {
      this.cmd = options.redis;
      this.owned = false;
    } else {
      const most = options.reconnectMaxMs ?? 2000;
      this.cmd = new Redis(options.url!, {
        lazyConnect: true,
        connectTimeout: 5_000,
        disconnectTimeout: DISCONNECT_MS,
        connectionName: name,
        retryStrategy: (times) => Math.min(times * 50, most),
        // A client that connects while Redis loads its data waits, by default, Redis's whole estimate of
        // the load (up to 10 s) before it looks again: other processes, connected a moment later, would
        // be ready seconds earlier and take this one's lease for lapsed. Look again every 100 ms.
        maxLoadingRetryTime: LOADING_RETRY_MS,
      });
      this.owned = true;
    }
    this.cluster = (this.cmd as Cluster).isCluster === true;
    this.where = this.cluster
      ? `cluster ${(this.cmd as unknown as { startupNodes?: unknown[] }).startupNodes?.map(nodeName).join(',') ?? '?'}`
      : options.url !== undefined && options.redis === undefined
        ? options.url.replace(/\/\/[^@/]*@/, '//***@')
        : `${(this.cmd as Redis).options.host ?? '?'}:${(this.cmd as Redis).options.port ?? '?'}`;
    // ioredis emits 'error' per failed connection attempt: reported once per outage by the owner.
    this.watch(this.cmd);
    this.cmd.on('ready', onReady);
    this.cmd.defineCommand('jrCreate', { numberOfKeys: 4, lua: CREATE });
    this.cmd.defineCommand('jrCreateKeyed', { numberOfKeys: 6, lua: CREATE });
    this.cmd.defineCommand('jrTransition', { numberOfKeys: 4, lua: TRANSITION });
    this.cmd.defineCommand('jrRestoreEnded', { numberOfKeys: 4, lua: RESTORE_ENDED });
    this.cmd.defineCommand('jrRemove', { numberOfKeys: 5, lua: REMOVE });
    this.cmd.defineCommand('jrTokens', { numberOfKeys: 1, lua: TOKENS });
    this.cmd.defineCommand('jrFirstToken', { numberOfKeys: 1, lua: FIRST_TOKEN });
    this.cmd.defineCommand('jrTokenRuns', { lua: TOKEN_RUNS });
    this.cmd.defineCommand('jrRunCheck', { numberOfKeys: 1, lua: RUN_CHECK });
    this.reads = this.copy('reads', {});
  }

  /**
   * Group of a shard: the unit of one pipeline. On a cluster, the node now serving the shard's slot, as
   * the client's slot table says: ioredis sends a pipeline to one node and takes any slots that node
   * serves, so a tick's writes go out as one pipeline per master, not one per shard (fewer, larger
   * pipelines are most of what a master spends per token). A slot the table does not know yet is a group
   * of its own. Callers build and send a group's pipeline within one tick, so the table cannot change
   * in between; a slot that moves while its commands are in flight gets `MOVED`, as with one slot.
   * On a single Redis, one group.
   */
  groupOf(shard: number, client: RedisClient = this.cmd): number {
    if (!this.cluster) return 0;
    const slot = this.slots[shard]!;
    return (client as Cluster)._groupsBySlot[slot] ?? -1 - slot;
  }

  /** The shards of each blocking reader: all of them on a single Redis, one each on a cluster (an XREAD cannot span slots). */
  groups(shards: number): number[][] {
    const all = Array.from({ length: shards }, (_, i) => i);
    return this.cluster ? all.map((s) => [s]) : [all];
  }

  pipeline(): Pipeline & ScriptCommands {
    return this.cmd.pipeline() as Pipeline & ScriptCommands;
  }

  readPipeline(): Pipeline {
    return this.reads.pipeline();
  }

  get scripts(): ScriptCommands {
    return this.cmd as unknown as ScriptCommands;
  }

  /**
   * A new connection of its own (a blocking reader, the lease), named so an operator can tell it apart.
   * Its commands wait for a reconnect instead of failing after a number of retries.
   */
  duplicate(suffix: string): RedisClient {
    return this.copy(suffix, { maxRetriesPerRequest: null });
  }

  private copy(suffix: string, extra: { maxRetriesPerRequest?: null }): RedisClient {
    const connectionName = `${this.name}:${suffix}`;
    const dup = this.cluster
      ? (this.cmd as Cluster).duplicate(undefined, {
          lazyConnect: true,
          redisOptions: {
            ...(this.cmd as Cluster).options.redisOptions,
            connectionName,
            disconnectTimeout: DISCONNECT_MS,
            ...extra,
          },
        })
      : (this.cmd as Redis).duplicate({
          lazyConnect: true,
          connectionName,
          disconnectTimeout: DISCONNECT_MS,
          ...extra,
        });
    this.watch(dup);
    this.blocking.push(dup);
    return dup;
  }

  /**
   * Reports a client's failed connections. A `Cluster` emits a failure of one node's connection as
   * `node error`, not `error`, and says nothing when that node is back: its nodes' `ready` says so.
   */
  private watch(client: RedisClient): void {
    client.on('error', this.onError);
    if (!this.cluster) return;
    client.on('node error', this.onError);
    (client as Cluster).nodes('all').forEach(this.watchNode);
    client.on('+node', this.watchNode);
    // A node whose connection ended leaves the pool, and until the slot table is read again a pipeline
    // spanning several of its slots is answered MOVED: ioredis reads the table again only after a MOVED
    // of a single-slot command, which may not come for long. Read it at once; failures come back as
    // 'node error'.
    client.on('-node', this.rereadSlots);
  }

  private readonly rereadSlots = function (this: Cluster): void {
    if (this.status === 'ready') this.refreshSlotsCache();
  };

  private readonly watchNode = (node: Redis): void => void node.on('ready', this.onReady);

  /** Connects the command and read connections (when not yet connected) and checks they answer. */
  async connect(): Promise<void> {
    try {
      if (this.cmd.status === 'wait') await this.cmd.connect();
      if (this.reads.status === 'wait') await this.reads.connect();
      await Promise.all([this.cmd.ping(), this.reads.ping()]);
    } catch (e) {
      await this.close();
      throw new BackendError(`cannot reach Redis at ${this.where}: ${messageOf(e)}`, e);
    }
  }

  /** Closes every connection made here (a blocking reader its tailer closed already too); once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.blocking.splice(0).map(disconnect));
    if (this.owned) await disconnect(this.cmd);
    else {
      this.cmd.off('error', this.onError);
      this.cmd.off('ready', this.onReady);
      if (this.cluster) {
        this.cmd.off('node error', this.onError);
        this.cmd.off('+node', this.watchNode);
        this.cmd.off('-node', this.rereadSlots);
        for (const node of (this.cmd as Cluster).nodes('all')) node.off('ready', this.onReady);
      }
    }
  }
}

/**
 * Disconnects a client made here. ioredis's `disconnect()` arms a timer of `disconnectTimeout`
 * (DISCONNECT_MS here) that only the socket's next 'close' clears, so a disconnect after which no 'close'
 * comes keeps the process alive that long after dispose():
 * - a client that has ended already (a blocking reader its tailer closed) closed its socket before:
 *   it is left alone;
 * - a connection on its way to ready (connecting, or connected with its ready check not answered yet:
 *   on a cluster, a node the client has just begun to use) fails that check when cut, and ioredis then
 *   disconnects it once more, its socket closed: it is let get there first, for at most HANDSHAKE_WAIT_MS.
 */
export async function disconnect(client: RedisClient): Promise<void> {
  if (ended(client)) return;
  const links = (client as Cluster).isCluster === true ? (client as Cluster).nodes('all') : [client as Redis];
  await Promise.all(links.filter((r) => r.status === 'connecting' || r.status === 'connect').map(handshake));
  if (!ended(client)) client.disconnect();
}

const ended = (client: RedisClient): boolean => client.status === 'end';

const SETTLED = ['ready', 'close', 'end'] as const;

/** Resolves once a connection on its way to ready is ready or closed, or after HANDSHAKE_WAIT_MS. */
function handshake(r: Redis): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      for (const e of SETTLED) r.off(e, done);
      resolve();
    };
    const timer = setTimeout(done, HANDSHAKE_WAIT_MS);
    for (const e of SETTLED) r.on(e, done);
  });
}

function nodeName(n: unknown): string {
  if (typeof n === 'string' || typeof n === 'number') return String(n);
  const o = n as { host?: string; port?: number };
  return `${o.host ?? '127.0.0.1'}:${o.port ?? 6379}`;
}
