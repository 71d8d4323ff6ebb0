import { spawn, type ChildProcess } from 'node:child_process';
import type { Cluster, Redis } from 'ioredis';
import { NEVER, Subject } from 'rxjs';
import {
  InvalidArgumentError,
  JobBusyError,
  JobCancelledError,
  type JobRegistry,
  type JobRegistryOptions,
  type RegistryEvent,
} from '../../src/core/index.js';
import type { BackendLogger, Keys } from '../../src/redis/index.js';
import { collect, waitFor } from './collect.js';

/** The store a keyed-job suite runs on: a single Redis or a Redis Cluster. */
export interface KeyedStore {
  /** A registry with a Redis backend of its own (as another process would have), logging to `logger`. */
  make(options?: JobRegistryOptions, logger?: BackendLogger): JobRegistry<string>;
  /** The key layout of the registries' prefix. */
  keys: Keys;
  /** A client for looking at the store directly. */
  admin: Redis | Cluster;
  leaseMs: number;
  /** Environment for test/helpers/keyed-owner.ts to use the same store and prefix. */
  ownerEnv: Record<string, string>;
}

/** A logger that records every line. */
export function recorder(): BackendLogger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    error: (m) => void lines.push(`error ${m}`),
    warn: (m) => void lines.push(`warn ${m}`),
  };
}

/** Starts test/helpers/keyed-owner.ts holding a job of `key`; resolves with the process and the job's id. */
function spawnOwner(store: KeyedStore, key: string): Promise<{ child: ChildProcess; id: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/keyed-owner.ts'], {
    env: { ...process.env, NODE_OPTIONS: '', ...store.ownerEnv, KEYED_KEY: key },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      const m = /job (\S+)/.exec(out);
      if (m !== null) resolve({ child, id: m[1]! });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`the owner process exited with ${code}: ${out}`)));
  });
}

/**
 * Keyed jobs across processes: two registries with backends of their own on one store and prefix, as two
 * processes would have. At most one live job per key across them, whichever creates first.
 */
export function keyedContract(name: string, store: () => KeyedStore): void {
  describe(`keyed jobs across processes (${name})`, () => {
    let made: Array<JobRegistry<string>> = [];
    let n = 0;
    const make = (options?: JobRegistryOptions, logger?: BackendLogger): JobRegistry<string> => {
      const r = store().make(options, logger);
      made.push(r);
      return r;
    };
    /** Two registries, ready. */
    const pair = async (
      options?: JobRegistryOptions,
      logger?: BackendLogger,
    ): Promise<[JobRegistry<string>, JobRegistry<string>]> => {
      const a = make(options, logger);
      const b = make(options, logger);
      await Promise.all([a.ready(), b.ready()]);
      return [a, b];
    };
    /** A key of its own for each test. */
    const freshKey = (): string => `chat-${process.pid}-${++n}-${Math.random().toString(36).slice(2, 8)}`;
    afterEach(async () => {
      await Promise.all(made.map((r) => r.dispose()));
      made = [];
    });

    test('concurrent creates of one key on two processes: exactly one is live, the other ends cancelled naming the key', async () => {
      const log = recorder();
      const [a, b] = await pair({}, log);
      for (let round = 0; round < 25; round++) {
        const key = freshKey();
        const x = a.createJob({ key });
        const y = b.createJob({ key });
        await Promise.all([a.flush(), b.flush()]);
        const claims = await Promise.allSettled([a.claimed(x), b.claimed(y)]);
        expect(claims.filter((c) => c.status === 'fulfilled')).toHaveLength(1);
        const [winner, loser, loserHeldBy] = claims[0].status === 'fulfilled' ? [x, y, b] : [y, x, a];
        const refused = claims.find((c): c is PromiseRejectedResult => c.status === 'rejected')!.reason;
        expect(refused).toBeInstanceOf(JobBusyError);
        expect(refused).toMatchObject({ code: 'JOB_BUSY', jobId: winner, key });
        expect(loserHeldBy.getJob(loser)).toMatchObject({ state: 'cancelled', key });
        for (const r of [a, b]) {
          expect((await r.activeJob(key))?.id).toBe(winner);
          const lost = await r.findJob(loser);
          expect(lost).toMatchObject({ state: 'cancelled', key });
          expect(lost!.error).toContain(`'${key}'`);
          expect(await r.findJob(winner)).toMatchObject({ state: 'queued', key });
        }
      }
      // A refusal is an answer, not a failure: nothing is logged.
      expect(log.lines).toEqual([]);
    }, 60_000);

    test("a create refused by the store ends like any job: its executor aborts, its readers and the other process's events see one end", async () => {
      const log = recorder();
      const [a, b] = await pair({}, log);
      const key = freshKey();
      const holder = a.createJob({ key });
      await a.claimed(holder);
      const remote = collect(a.events$);
      const local = collect(b.events$);
      let signal: AbortSignal | undefined;
      const id = b.createJob({ key });
      b.executeAndStream(id, (_p, ctx) => ((signal = ctx.signal), NEVER)).subscribe({
        error: () => undefined,
      });
      const reader = collect(b.tokens$(id));
      await expect(b.claimed(id)).rejects.toMatchObject({ jobId: holder, key });
      await reader.done;
      expect(reader.error).toBeInstanceOf(JobCancelledError);
      expect((reader.error as Error).message).toContain(`'${key}'`);
      expect(signal!.aborted).toBe(true);
      const kinds = (events: RegistryEvent[]): string[] =>
        events.filter((e) => e.jobId === id).map((e) => (e.type === 'stateChanged' ? e.to : e.type));
      expect(kinds(local.values)).toEqual(['created', 'running', 'cancelled']);
      await waitFor(() => kinds(remote.values).includes('cancelled'), 5000, 'the end on the other process');
      expect(kinds(remote.values)).toEqual(['created', 'cancelled']);
      expect(remote.values.find((e) => e.jobId === id)).toMatchObject({ type: 'created', key });
      remote.unsubscribe();
      local.unsubscribe();
      // The store kept the holder's key; its job runs on.
      expect((await b.activeJob(key))?.id).toBe(holder);
      expect(a.getJobState(holder)).toBe('queued');
      expect(log.lines).toEqual([]);
    });

    test('a key held by a live job of this process is refused at once with JobBusyError, as in memory', async () => {
      const [a] = await pair();
      const key = freshKey();
      const id = a.createJob({ key });
      expect(() => a.createJob({ key })).toThrow(JobBusyError);
      expect(a.jobIds()).toEqual([id]);
    });

    test("keyConflict 'replace' across processes: the newer job takes the key, the older one's executor aborts where it runs", async () => {
      const [a, b] = await pair({ keyConflict: 'replace' });
      const key = freshKey();
      const first = a.createJob({ key });
      let signal: AbortSignal | undefined;
      a.executeAndStream(first, (_p, ctx) => ((signal = ctx.signal), NEVER)).subscribe({
        error: () => undefined,
      });
      await a.claimed(first);
      const second = b.createJob({ key });
      await b.claimed(second);
      await waitFor(() => signal?.aborted === true, 10_000, "the first job's executor aborted");
      expect(a.getJob(first)).toMatchObject({
        state: 'cancelled',
        error: 'replaced by a newer job of its key',
      });
      for (const r of [a, b]) expect((await r.activeJob(key))?.id).toBe(second);
      // Both at once, round after round: the one Redis took last holds the key, the other is cancelled.
      for (let round = 0; round < 10; round++) {
        const k = freshKey();
        const x = a.createJob({ key: k });
        const y = b.createJob({ key: k });
        await Promise.all([a.claimed(x), b.claimed(y)]);
        const live = async (): Promise<string[]> =>
          [(await a.findJob(x))!, (await b.findJob(y))!].filter((s) => s.state === 'queued').map((s) => s.id);
        await waitFor(async () => (await live()).length === 1, 10_000, 'one live job of the key');
        const [winner] = await live();
        for (const r of [a, b]) expect((await r.activeJob(k))?.id).toBe(winner);
      }
    }, 60_000);

    test('another process sees the key: activeJob, snapshots, listJobs and the created event', async () => {
      const [a, b] = await pair();
      const key = freshKey();
      const seen = collect(b.events$);
      const id = a.createJob({ key, owner: 'alice' });
      await a.flush();
      await waitFor(() => seen.values.some((e) => e.jobId === id), 5000, 'created on b');
      expect(seen.values.find((e) => e.jobId === id)).toMatchObject({ type: 'created', key, owner: 'alice' });
      seen.unsubscribe();
      expect(await b.activeJob(key)).toMatchObject({ id, key, owner: 'alice', state: 'queued' });
      expect(await b.findJob(id)).toMatchObject({ key });
      expect((await b.listJobs()).find((s) => s.id === id)).toMatchObject({ key });
      expect(await b.activeJob(freshKey())).toBeUndefined();
      // Its id was drawn in its key's shard, and is an id like any other.
      expect(id).toMatch(/^job-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(store().keys.shardOf(id)).toBe(store().keys.shardOf(key));
    });

    test.each(['completed', 'failed', 'cancelled'] as const)(
      'the key is free again on every process once its job ended %s',
      async (end) => {
        const [a, b] = await pair();
        const key = freshKey();
        const record = store().keys.keyRecord(key);
        const id = a.createJob({ key });
        await a.claimed(id);
        expect(await store().admin.get(record)).toBe(id);
        // Nothing leaks if the job vanishes without an end: the record expires as a live job's keys do.
        expect(await store().admin.pttl(record)).toBeGreaterThan(0);
        a.emit(id, 'token');
        if (end === 'cancelled') await expect(b.cancel(id)).resolves.toBe(true);
        else a.updateState(id, end, end === 'failed' ? 'boom' : undefined);
        await a.flush();
        expect(await store().admin.exists(record)).toBe(0);
        for (const r of [a, b]) expect(await r.activeJob(key)).toBeUndefined();
        const next = b.createJob({ key });
        await b.claimed(next);
        expect((await a.activeJob(key))?.id).toBe(next);
      },
    );

    test('removing a live keyed job frees its key', async () => {
      const [a, b] = await pair();
      const key = freshKey();
      const id = a.createJob({ key });
      await a.claimed(id);
      a.removeJob(id);
      await a.flush();
      expect(await store().admin.exists(store().keys.keyRecord(key))).toBe(0);
      const next = b.createJob({ key });
      await b.claimed(next);
    });

    test('a key whose owner died is free again once the reaper ended its job', async () => {
      const [b] = await pair();
      const key = freshKey();
      const { child, id } = await spawnOwner(store(), key);
      try {
        expect(await b.activeJob(key)).toMatchObject({ id, key, state: 'running' });
        const refused = b.createJob({ key });
        await expect(b.claimed(refused)).rejects.toBeInstanceOf(JobBusyError);
        child.kill('SIGKILL');
        await waitFor(
          async () => (await b.activeJob(key)) === undefined,
          store().leaseMs * 8,
          "the dead owner's job ended",
        );
        const ended = await b.findJob(id);
        expect(ended).toMatchObject({ state: 'failed', key });
        expect(ended!.error).toMatch(/stopped renewing its lease/);
        expect(await store().admin.exists(store().keys.keyRecord(key))).toBe(0);
        const next = b.createJob({ key });
        await b.claimed(next);
      } finally {
        child.kill('SIGKILL');
      }
    }, 60_000);

    test("a live job's owner keeps pushing its key record's expiry out, as its job's keys'", async () => {
      const [a] = await pair();
      const key = freshKey();
      const record = store().keys.keyRecord(key);
      const id = a.createJob({ key });
      await a.claimed(id);
      await store().admin.pexpire(record, 30_000);
      await waitFor(
        async () => (await store().admin.pttl(record)) > 40_000,
        store().leaseMs * 8,
        'the expiry pushed out',
      );
      expect(await store().admin.get(record)).toBe(id);
    }, 30_000);

    test('a key record naming a missing or ended job counts as free; one that is not ours is skipped, logged once', async () => {
      const log = recorder();
      const [a, b] = await pair({}, log);
      const key = freshKey();
      const record = store().keys.keyRecord(key);
      // A job that vanished without an end (its hash expired before the record).
      await store().admin.set(record, 'job-vanished', 'PX', 60_000);
      expect(await b.activeJob(key)).toBeUndefined();
      const first = a.createJob({ key });
      await a.claimed(first);
      a.updateState(first, 'completed');
      await a.flush();
      // A record left naming the job after its end (written back by hand here).
      await store().admin.set(record, first, 'PX', 60_000);
      expect(await b.activeJob(key)).toBeUndefined();
      const second = b.createJob({ key });
      await b.claimed(second);
      expect((await a.activeJob(key))?.id).toBe(second);
      b.updateState(second, 'cancelled');
      await b.flush();
      expect(log.lines).toEqual([]);
      // Not a record this backend wrote: read as no live job, logged once with its key; a create replaces it.
      await store().admin.del(record);
      await store().admin.hset(record, 'x', '1');
      expect(await a.activeJob(key)).toBeUndefined();
      expect(await a.activeJob(key)).toBeUndefined();
      expect(log.lines.filter((l) => l.includes(record))).toHaveLength(1);
      const third = a.createJob({ key });
      await a.claimed(third);
      expect((await b.activeJob(key))?.id).toBe(third);
    });

    test('a job without a key is unchanged: no key in its snapshot or events, no key field in Redis', async () => {
      const [a, b] = await pair();
      const seen = collect(b.events$);
      const id = a.createJob();
      await a.flush();
      await waitFor(() => seen.values.some((e) => e.jobId === id), 5000, 'created on b');
      expect(seen.values.find((e) => e.jobId === id)).not.toHaveProperty('key');
      seen.unsubscribe();
      expect(a.getJob(id)).not.toHaveProperty('key');
      expect(await b.findJob(id)).not.toHaveProperty('key');
      expect(await store().admin.hget(store().keys.meta(id), 'key')).toBeNull();
    });

    test('any key of 1 to 256 characters works, braces and all; bad keys are refused before anything is written', async () => {
      const [a, b] = await pair();
      const odd = `{chat}:*?[x] \n ü ${freshKey()}`;
      const id = a.createJob({ key: odd });
      await a.claimed(id);
      expect((await b.activeJob(odd))?.id).toBe(id);
      a.updateState(id, 'completed');
      await a.flush();
      expect(await store().admin.exists(store().keys.keyRecord(odd))).toBe(0);
      const seen = collect(b.events$);
      for (const bad of ['', 'x'.repeat(257), 5, null, {}])
        expect(() => a.createJob({ key: bad as never })).toThrow(InvalidArgumentError);
      await expect(a.activeJob('')).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(b.activeJob(7 as never)).rejects.toBeInstanceOf(InvalidArgumentError);
      expect(a.jobIds()).toEqual([id]);
      // Nothing half-created: the next job a creates is the first b hears of.
      const marker = a.createJob();
      await a.flush();
      await waitFor(() => seen.values.some((e) => e.jobId === marker), 5000, 'the marker on b');
      expect(seen.values.filter((e) => e.type === 'created').map((e) => e.jobId)).toEqual([marker]);
      seen.unsubscribe();
    });

    test('claimed() of a job this process does not hold rejects; of a job without a key it resolves', async () => {
      const [a] = await pair();
      const id = a.createJob();
      await expect(a.claimed(id)).resolves.toBeUndefined();
      await expect(a.claimed('job-unknown')).rejects.toMatchObject({ code: 'JOB_NOT_FOUND' });
      const source = new Subject<string>();
      const keyed = a.createJob({ key: freshKey() });
      a.setTokenSource(keyed, source);
      await expect(a.claimed(keyed)).resolves.toBeUndefined();
      source.complete();
    });
  });
}
