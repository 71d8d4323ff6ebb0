import { isJobState, isTerminal } from '../core/states.js';
import type { BackendHost } from '../core/backend.js';
import type { Connection, Pipeline, RedisClient } from './connection.js';
import type { Keys } from './keys.js';
import { perGroup } from './lookups.js';
import type { OutageKind, Outages } from './outage.js';

/**
 * Outages of this process during which what it reads of other processes' leases may be stale: a lease
 * found gone then is confirmed only once it stayed gone for a whole lease.
 */
const SUSPECT_WHILE_FAILING: readonly OutageKind[] = ['lease renewal', 'sweep', 'writes', 'reads'];

/** What the lease keeper needs from the backend. */
export interface LeaseContext {
  conn: Connection;
  keys: Keys;
  owner: string;
  leaseMs: number;
  /** TTL of live job keys, and of shard keys (-1: none); retention of terminal jobs (-1: kept). */
  liveTtl: number;
  shardTtl: number;
  retentionMs: number;
  outages: Outages;
  host: () => BackendHost | undefined;
  /** Jobs held elsewhere that a reader of this process follows. */
  watched(): string[];
  /** A followed job's data is gone. */
  vanished(jobId: string): void;
  /** A job this process holds has no data in Redis any more. */
  lost(jobId: string): void;
  /** Ends a live job of a dead process as failed; true when it did. */
  reap(jobId: string, owner: string): Promise<boolean>;
}

/**
 * The process lease and the periodic sweep. Every `leaseMs / 3` the lease is renewed; when it was gone
 * (Redis lost its data, or this process was cut off long enough to be taken for dead), every job this
 * process holds is checked against Redis: lost ones are restored as failed, ones another process ended
 * take that end here. Every `leaseMs / 4` (at most 500 ms) the sweep ends the live jobs of dead processes
 * (see `confirmedDead`: no job of a killed process stays `running`, none of a live process whose lease
 * Redis just lost is taken), ends readers whose job vanished, refreshes TTLs and drops index entries of
 * expired jobs. Each failure is logged once per outage.
 */
export class Leases {
  private timers: Array<ReturnType<typeof setInterval>> = [];
  private renewals = 0;
  private client: RedisClient | undefined;
  private readonly missingSince = new Map<string, number>();
  /** What follows renewals, due and running (see `followUp`). */
  private readonly due = { reconcile: false, refresh: false };
  private following = false;
  /** The last time this process saw Redis lose data or answer a sweep slowly (start counts as one). */
  private trouble = Date.now();
  private closed = false;

  constructor(private readonly c: LeaseContext) {}

  async start(): Promise<void> {
    // The lease has a connection of its own: a renewal never waits behind a pipeline of bulk writes.
    this.client = this.c.conn.duplicate('lease');
    if (this.client.status === 'wait') await this.client.connect();
    await this.client.set(this.key, '1', 'PX', this.c.leaseMs);
    this.every(Math.max(50, this.c.leaseMs / 3), () => this.renew());
    this.every(Math.max(50, Math.min(this.c.leaseMs / 4, 500)), () => this.sweep());
  }

  /**
   * Whether a process whose lease is missing is dead. Redis must have been reachable, quick and whole
   * (no data lost) here for a whole lease: an owner that is alive renews every third of a lease, so it
   * had three chances to put its lease back. Otherwise (Redis just came back, was paused, or lost its
   * data: every lease is gone at once, and an owner whose connections were cut must reconnect first) the
   * lease must stay missing for a whole lease after it was first seen gone.
   */
  confirmedDead(owner: string, now = Date.now()): boolean {
    const since = this.missingSince.get(owner);
    if (since === undefined) return false;
    const calm =
      now - Math.max(this.trouble, this.c.outages.lastChange) >= this.c.leaseMs &&
      !SUSPECT_WHILE_FAILING.some((kind) => this.c.outages.since(kind) !== undefined);
    return calm || now - since >= this.c.leaseMs;
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  private get key(): string {
    return this.c.keys.owner(this.c.owner);
  }

  private every(ms: number, run: () => Promise<void>): void {
    let busy = false;
    const timer = setInterval(() => {
      if (busy || this.closed) return;
      busy = true;
      void run().finally(() => (busy = false));
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private async renew(): Promise<void> {
    // The lease connection waits for a reconnect instead of failing: a renewal that waits that long is
    // an outage too (the lease may lapse meanwhile), reported as one.
    const slow = setTimeout(
      () =>
        !this.closed &&
        this.c.outages.fail(
          'lease renewal',
          `renewing this process's lease got no answer within ${Math.round(this.c.leaseMs / 2)} ms; past leaseMs (${this.c.leaseMs} ms) other processes end its jobs as failed`,
          'Redis did not answer',
        ),
      this.c.leaseMs / 2,
    );
    slow.unref();
    try {
      const kept = await this.client!.set(this.key, '1', 'PX', this.c.leaseMs, 'XX');
      if (kept === null) {
        // Gone (Redis lost it, or it lapsed): put back, then every job held here checked.
        await this.client!.set(this.key, '1', 'PX', this.c.leaseMs);
        this.due.reconcile = true;
      } else if (++this.renewals % 9 === 0) this.due.refresh = true;
      this.c.outages.ok('lease renewal');
    } catch (e) {
      this.c.outages.fail(
        'lease renewal',
        `renewing this process's lease failed; past leaseMs (${this.c.leaseMs} ms) other processes end its jobs as failed`,
        e,
      );
    } finally {
      clearTimeout(slow);
    }
    this.followUp();
  }

  /**
   * Runs what renewals asked for (a reconcile after the lease was found gone, the live jobs' TTL refresh)
   * beside the renewals, never in their way: it touches job keys on every master, and one master paused
   * or cut off must not stop this process renewing its lease on another (others would take it for dead
   * and end its jobs). A reconcile that fails is tried again after the next renewal.
   */
  private followUp(): void {
    if (this.following || this.closed || (!this.due.reconcile && !this.due.refresh)) return;
    this.following = true;
    void this.runDue().finally(() => (this.following = false));
  }

  private async runDue(): Promise<void> {
    try {
      while (!this.closed && (this.due.reconcile || this.due.refresh)) {
        // A reconcile refreshes the TTLs too.
        const reconcile = this.due.reconcile;
        this.due.reconcile = this.due.refresh = false;
        try {
          await (reconcile ? this.reconcile() : this.refreshLive());
        } catch (e) {
          if (reconcile) this.due.reconcile = true;
          else this.due.refresh = true;
          throw e;
        }
      }
      this.c.outages.ok('job checks');
    } catch (e) {
      if (this.closed) return;
      this.c.outages.fail(
        'job checks',
        "checking this process's live jobs against Redis, or pushing back their expiry, after a lease renewal failed (tried again after the next renewal)",
        e,
      );
    }
  }

  /** Checks every live job held here against Redis. */
  private async reconcile(): Promise<void> {
    const host = this.c.host();
    if (host === undefined) return;
    const ids = host.liveJobs();
    if (ids.length === 0) return;
    const replies = await this.perJob(ids, 1, (pipe, id, shard) => {
      pipe.hmget(this.c.keys.meta(id, shard), 'state', 'error', 'error_private');
    });
    if (this.closed) return;
    ids.forEach((id, i) => {
      const [state, error, priv] = replies[i]![0] as [string | null, string | null, string | null];
      if (state === null) this.c.lost(id);
      else if (isJobState(state) && isTerminal(state))
        host.adoptEnd(id, state as 'completed' | 'failed' | 'cancelled', error ?? undefined, priv === '1');
    });
    await this.refreshLive();
  }

  /**
   * Pushes back the expiry of every live job held here, and of their keys' records (they vanish only
   * when no owner is left).
   */
  private async refreshLive(): Promise<void> {
    const ids = this.c.host()?.liveJobs() ?? [];
    if (ids.length === 0) return;
    await this.perJob(ids, 2, (pipe, id, shard) => {
      pipe.pexpire(this.c.keys.meta(id, shard), this.c.liveTtl);
      pipe.pexpire(this.c.keys.tokens(id, shard), this.c.liveTtl);
    });
    const keys = this.c.host()?.liveKeys() ?? [];
    if (keys.length === 0) return;
    await this.perJob(keys, 1, (pipe, key, shard) => {
      pipe.pexpire(this.c.keys.keyRecord(key, shard), this.c.liveTtl);
    });
  }

  /** `perGroup` over job ids (or keys), each in its own shard. */
  private perJob(
    ids: string[],
    perItem: number,
    add: (pipe: Pipeline, id: string, shard: number) => void,
  ): Promise<unknown[][]> {
    return perGroup(this.c.conn, ids, (id) => this.c.keys.shardOf(id), perItem, add);
  }

  private async sweep(): Promise<void> {
    const started = Date.now();
    try {
      await this.checkEpoch();
      if (Date.now() - started > this.c.leaseMs / 4) this.trouble = Date.now();
      await this.reapDeadOwners(started);
      await this.checkWatched();
      await this.tidyShards();
      this.c.outages.ok('sweep');
    } catch (e) {
      // A sweep cut short by close() (its connection went) is not a failure.
      if (this.closed) return;
      this.c.outages.fail('sweep', 'the sweep for dead processes and vanished jobs failed', e);
    }
  }

  // A key every process keeps (with the shard keys' TTL) holding when it was made: missing or young, it
  // says Redis lost its data lately (restarted without persistence, flushed).
  private async checkEpoch(): Promise<void> {
    const key = this.c.keys.epoch;
    const made = await this.c.conn.cmd.get(key);
    const now = Date.now();
    if (made === null) {
      await this.c.conn.cmd.set(key, String(now), 'NX');
      this.trouble = now;
    } else if (now - Number(made) < this.c.leaseMs) this.trouble = Math.max(this.trouble, Number(made));
    if (this.c.shardTtl >= 0) await this.c.conn.cmd.pexpire(key, this.c.shardTtl);
  }

  /**
   * Ends the live jobs of processes whose lease is gone (see `confirmedDead`). A sweep Redis answered
   * slowly (on a cluster, one master paused while the epoch's answered at once) counts as trouble: a
   * lease found gone then may be one its owner could not renew through the same stall.
   */
  private async reapDeadOwners(started: number): Promise<void> {
    const shards = Array.from({ length: this.c.keys.shards }, (_, i) => i);
    const replies = await perGroup(
      this.c.conn,
      shards,
      (s) => s,
      1,
      (pipe, shard) => {
        pipe.hgetall(this.c.keys.live(shard));
      },
    );
    const byOwner = new Map<string, string[]>();
    for (const [live] of replies as [Record<string, string>][])
      for (const [jobId, owner] of Object.entries(live)) {
        if (owner === this.c.owner) continue;
        let jobs = byOwner.get(owner);
        if (jobs === undefined) byOwner.set(owner, (jobs = []));
        jobs.push(jobId);
      }
    const owners = [...byOwner.keys()];
    const alive = await Promise.all(owners.map((o) => this.c.conn.cmd.exists(this.c.keys.owner(o))));
    // Data lost between this sweep's first look at the epoch and its look at the leases (a flush right
    // then) took live owners' leases with it before they could renew: the epoch, read again after the
    // leases, shows any loss that came before them, and no lease found gone then counts at first sight.
    if (alive.some((a) => a !== 1)) await this.checkEpoch();
    const now = Date.now();
    if (now - started > this.c.leaseMs / 4) this.trouble = now;
    const reaps: Array<Promise<boolean>> = [];
    owners.forEach((owner, i) => {
      if (alive[i] === 1) return void this.missingSince.delete(owner);
      const since = this.missingSince.get(owner) ?? now;
      this.missingSince.set(owner, since);
      if (this.confirmedDead(owner, now))
        for (const jobId of byOwner.get(owner)!) reaps.push(this.c.reap(jobId, owner));
    });
    for (const owner of this.missingSince.keys()) if (!byOwner.has(owner)) this.missingSince.delete(owner);
    await Promise.all(reaps);
  }

  private async checkWatched(): Promise<void> {
    const host = this.c.host();
    const ids = this.c.watched().filter((id) => !(host?.holds(id) ?? false));
    if (ids.length === 0) return;
    const replies = await this.perJob(ids, 1, (pipe, id, shard) => {
      pipe.hexists(this.c.keys.meta(id, shard), 'state');
    });
    ids.forEach((id, i) => {
      if (replies[i]![0] === 0) this.c.vanished(id);
    });
  }

  private async tidyShards(): Promise<void> {
    const shards = Array.from({ length: this.c.keys.shards }, (_, i) => i);
    const before = Date.now() - (this.c.retentionMs < 0 ? Infinity : this.c.retentionMs);
    const replies = await perGroup(
      this.c.conn,
      shards,
      (s) => s,
      3,
      (pipe, shard) => {
        if (this.c.shardTtl >= 0) {
          pipe.pexpire(this.c.keys.jobs(shard), this.c.shardTtl);
          pipe.pexpire(this.c.keys.live(shard), this.c.shardTtl);
        } else pipe.ping().ping();
        pipe.zrangebyscore(
          this.c.keys.jobs(shard),
          '-inf',
          Number.isFinite(before) ? before : '-inf',
          'LIMIT',
          0,
          200,
        );
      },
    );
    const old = shards.flatMap((shard, i) => (replies[i]![2] as string[]).map((id) => ({ id, shard })));
    if (old.length === 0) return;
    const exists = await perGroup(
      this.c.conn,
      old,
      (o) => o.shard,
      1,
      (pipe, o) => {
        pipe.exists(this.c.keys.meta(o.id, o.shard));
      },
    );
    const gone = old.filter((_, i) => exists[i]![0] === 0);
    if (gone.length === 0) return;
    await perGroup(
      this.c.conn,
      gone,
      (o) => o.shard,
      1,
      (pipe, o) => {
        pipe.zrem(this.c.keys.jobs(o.shard), o.id);
      },
    );
  }
}
