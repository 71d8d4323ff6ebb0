/**
 * Regression tests for the faults of the shared (Redis) path: each reproduces one defect of an earlier
 * backend (a crash, a silent gap, a reader that never ends, events out of order, two answers for one job,
 * a failed POST that left a job running, a failure nobody logged).
 */
import { Redis } from 'ioredis';
import { from, interval, map, take } from 'rxjs';
import {
  BackendError,
  JobFailedError,
  JobNotFoundError,
  JobRegistry,
  ReplayExpiredError,
  type RegistryEvent,
} from '../../src/core/index.js';
import { createJobHandler, createResponsesHandler } from '../../src/http/index.js';
import { Keys, redisBackend, type BackendLogger, type RedisBackendOptions } from '../../src/redis/index.js';
import { virtualClock } from '../helpers/clock.js';
import { collect, describeIf, sleep, waitFor } from '../helpers/collect.js';
import { postJson, serveHandler } from '../helpers/http.js';
import { haveRedisServer, privateRedis, type PrivateRedis } from '../helpers/private-redis.js';
import { REDIS_URL, clientList, dropPrefix, haveRedis, testPrefix } from '../helpers/redis.js';

const available = (await haveRedis()) && haveRedisServer('the Redis fault tests');
const prefix = testPrefix('faults');
const K = new Keys(prefix, 8);
const LEASE = 1000;

/** A logger that records every line, by level. */
function recorder(): BackendLogger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    error: (m) => void lines.push(`error ${m}`),
    warn: (m) => void lines.push(`warn ${m}`),
    info: (m) => void lines.push(`info ${m}`),
  };
}

describeIf(available)('redis backend faults', () => {
  const registries: JobRegistry<string>[] = [];
  const admin = new Redis(REDIS_URL);
  let own: PrivateRedis;
  const quiet = recorder();
  const make = (extra: Partial<RedisBackendOptions> & { replayLimit?: number; retention?: number } = {}) => {
    const { replayLimit, retention, ...backend } = extra;
    const r = new JobRegistry<string>({
      ...(replayLimit !== undefined ? { replayLimit } : {}),
      ...(retention !== undefined ? { retention } : {}),
      backend: redisBackend({
        url: REDIS_URL,
        prefix,
        leaseMs: LEASE,
        blockMs: 1000,
        logger: quiet,
        ...backend,
      }),
    });
    registries.push(r);
    return r;
  };
  beforeAll(async () => {
    own = await privateRedis();
  }, 20_000);
  afterEach(async () => {
    await Promise.all(registries.splice(0).map((r) => r.dispose().catch(() => undefined)));
  });
  afterAll(async () => {
    await own.close();
    await dropPrefix(prefix);
    admin.disconnect();
  });

  // 1. Crash under backpressure.
  test('an executor producing past maxPendingWrites fails its job with BackendError; nothing throws', async () => {
    const r = make({ url: own.url, maxPendingWrites: 50 });
    await r.ready();
    const viaExecutor = r.createJob();
    const viaSender = r.createJob();
    await r.flush();
    await own.stop();
    const tokens = Array.from({ length: 500 }, (_, i) => `t${i}`);
    r.executeAndStream(viaExecutor, () => from(tokens)).subscribe({ error: () => undefined });
    from(tokens).subscribe(r.getTokenSender(viaSender));
    for (const id of [viaExecutor, viaSender]) {
      expect(r.getJob(id)!.state).toBe('failed');
      expect(r.getJob(id)!.error).toMatch(/maxPendingWrites/);
    }
    await own.start();
    await r.flush();
    // The end reached Redis once it was back: another process sees the same end.
    const other = make({ url: own.url });
    await other.ready();
    await waitFor(
      async () => (await other.findJob(viaExecutor))?.state === 'failed',
      5000,
      'failed in Redis',
    );
  }, 30_000);

  // 2. Silent token loss.
  test('a remote reader of a bounded buffer that falls behind ends with ReplayExpiredError at the first missing seq', async () => {
    const a = make({ replayLimit: 50 });
    const b = make({ replayLimit: 50 });
    await Promise.all([a.ready(), b.ready()]);
    const id = a.createJob();
    await a.flush();
    const r = collect(b.tokens$(id));
    for (let burst = 0; burst < 20; burst++) {
      for (let i = 0; i < 500; i++) a.emit(id, `t${burst * 500 + i}`);
      await new Promise((resolve) => setImmediate(resolve));
    }
    a.updateState(id, 'completed');
    await a.flush();
    await r.done;
    const seqs = r.values.map((v) => v.seq);
    // Whatever arrived is contiguous and right; what did not arrive is reported, never skipped.
    seqs.forEach((seq, i) => i > 0 && expect(seq).toBe(seqs[i - 1]! + 1));
    r.values.forEach((v) => expect(v.token).toBe(`t${v.seq}`));
    if (seqs.length < 10_000) {
      expect(r.error).toBeInstanceOf(ReplayExpiredError);
      expect((r.error as ReplayExpiredError).after).toBe(seqs.at(-1) ?? -1);
    } else expect(r.completed).toBe(true);
  }, 30_000);

  test('tokens missing before the end entry (lost with Redis data) end a reader with ReplayExpiredError, not done', async () => {
    const a = make();
    const b = make();
    await Promise.all([a.ready(), b.ready()]);
    const id = a.createJob();
    for (let i = 0; i < 50; i++) a.emit(id, `t${i}`);
    a.updateState(id, 'completed');
    await a.flush();
    // The last tokens vanish from the stream, as when Redis loses writes it had not persisted.
    for (let seq = 40; seq < 50; seq++) await admin.xdel(K.tokens(id), `0-${seq + 1}`);
    const r = collect(b.tokens$(id));
    await r.done;
    expect(r.values.map((v) => v.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(r.completed).toBe(false);
    expect(r.error).toBeInstanceOf(ReplayExpiredError);
    expect((r.error as ReplayExpiredError).after).toBe(39);
  });

  // 3. Readers that never end.
  test('removeJob of a live job while a remote reader catches up ends that reader within the lease', async () => {
    const a = make();
    const b = make();
    await Promise.all([a.ready(), b.ready()]);
    const id = a.createJob();
    for (let i = 0; i < 20_000; i++) a.emit(id, `t${i}`);
    await a.flush();
    const r = collect(b.tokens$(id));
    a.removeJob(id);
    await a.flush();
    const ended = await Promise.race([r.done.then(() => true), sleep(LEASE + 2000).then(() => false)]);
    expect(ended).toBe(true);
    expect(r.completed).toBe(false);
    expect(r.error).toBeInstanceOf(Error);
    expect((r.error as { code?: string }).code).toMatch(/JOB_CANCELLED|JOB_FAILED|JOB_NOT_FOUND/);
  }, 30_000);

  test.each([
    ['FLUSHALL', (redis: PrivateRedis) => redis.admin.flushall().then(() => undefined)],
    [
      'a restart without persistence',
      async (redis: PrivateRedis) => (await redis.stop(false), await redis.start()),
    ],
  ])(
    'after %s the job ends failed on its owner and on every reader within the lease, and no key is left without expiry',
    async (_, fault) => {
      const a = make({ url: own.url });
      const b = make({ url: own.url });
      await Promise.all([a.ready(), b.ready()]);
      const id = a.createJob();
      a.setTokenSource(
        id,
        interval(20).pipe(
          map((i) => `t${i}`),
          take(100_000),
        ),
      );
      await waitFor(() => a.getJob(id)!.tokenCount > 5, 5000, 'tokens');
      await a.flush();
      const r = collect(b.tokens$(id));
      const s = collect(b.state$(id));
      await waitFor(() => r.values.length > 3, 5000, 'remote tokens');
      await fault(own);
      const t0 = Date.now();
      await Promise.race([r.done, sleep(LEASE + 2000)]);
      expect(Date.now() - t0).toBeLessThan(LEASE + 2000);
      // The end the owner wrote back (failed), or, when the reader's own check came first, not found.
      // A failure names the error the reader got instead.
      expect(
        [JobFailedError, JobNotFoundError].some((E) => r.error instanceof E)
          ? 'as expected'
          : String(r.error),
      ).toBe('as expected');
      await waitFor(() => a.getJob(id)!.state === 'failed', LEASE + 2000, 'owner ends the job');
      await waitFor(
        async () => (await b.findJob(id))?.state === 'failed',
        LEASE + 2000,
        'every process agrees',
      );
      await s.done;
      // Every key Redis holds for the run expires by itself.
      await a.flush();
      for (const key of await own.admin.keys(`${prefix}*`))
        expect([key, await own.admin.pttl(key)]).not.toEqual([key, -1]);
      r.unsubscribe();
    },
    30_000,
  );

  // 4. Events out of order.
  test('cancel and remove in one tick reach other processes as stateChanged then removed', async () => {
    const a = make();
    const b = make();
    await Promise.all([a.ready(), b.ready()]);
    const seen = collect(b.events$);
    const local = collect(a.events$);
    const id = a.createJob();
    a.emit(id, 'x');
    void a.cancel(id);
    a.removeJob(id);
    await a.flush();
    const kinds = (events: RegistryEvent[]) =>
      events.filter((e) => e.jobId === id).map((e) => (e.type === 'stateChanged' ? e.to : e.type));
    await waitFor(() => kinds(seen.values).includes('removed'), 5000, 'removed');
    expect(kinds(seen.values)).toEqual(['created', 'running', 'cancelled', 'removed']);
    expect(kinds(local.values)).toEqual(['created', 'running', 'cancelled', 'removed']);
    seen.unsubscribe();
    local.unsubscribe();
  });

  // 5. Two answers for one job.
  test('a remote cancel racing the owner finishing: every process and every reader reports one end', async () => {
    const a = make();
    const b = make();
    await Promise.all([a.ready(), b.ready()]);
    for (let round = 0; round < 20; round++) {
      const id = a.createJob();
      a.emit(id, 'x');
      await a.flush();
      const remote = collect(b.tokens$(id));
      const local = collect(a.tokens$(id));
      const producer = a.getTokenSender(id);
      const cancelled = b.cancel(id, 'raced');
      await sleep(round % 4);
      producer.complete(); // ignored when the cancel got there first
      const moved = await cancelled;
      await a.flush();
      await Promise.all([remote.done, local.done]);
      const state = a.getJob(id)!.state;
      expect((await b.findJob(id))!.state).toBe(state);
      expect(moved).toBe(state === 'cancelled');
      expect(remote.completed).toBe(state === 'completed');
      expect(local.completed).toBe(state === 'completed');
    }
  }, 60_000);

  test("the owner's own readers end as Redis ended the job when another process's end got there first", async () => {
    const a = make();
    await a.ready();
    const id = a.createJob();
    a.emit(id, 'x');
    await a.flush();
    const local = collect(a.tokens$(id));
    // Another process ended the job in Redis (as a lease check does while the owner is cut off).
    await admin.hset(K.meta(id), 'state', 'failed', 'error', 'ended elsewhere');
    a.getTokenSender(id).complete();
    await local.done;
    expect(local.completed).toBe(false);
    expect(local.error).toBeInstanceOf(JobFailedError);
    expect(a.getJob(id)!.state).toBe('failed');
  });

  test('cancel on the owner answers what Redis stored: false when another end got there first', async () => {
    const a = make();
    await a.ready();
    const id = a.createJob();
    a.emit(id, 'x');
    await a.flush();
    await admin.hset(K.meta(id), 'state', 'failed', 'error', 'ended elsewhere');
    await expect(a.cancel(id)).resolves.toBe(false);
    expect(a.getJob(id)!.state).toBe('failed');
    const other = a.createJob();
    await expect(a.cancel(other)).resolves.toBe(true);
  });

  // 6. A failed POST leaves a running job; a rejected pipeline rejects every later flush.
  test('POST answers 503 when the job cannot be stored, and nothing runs on; later POSTs work once Redis is back', async () => {
    const client = new Redis(own.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      retryStrategy: () => 200,
    });
    const registry = new JobRegistry<string, unknown>({
      backend: redisBackend({ redis: client, prefix, leaseMs: 5000, logger: quiet }),
    });
    await registry.ready();
    const signals: AbortSignal[] = [];
    const served = await serveHandler(
      createJobHandler(registry, {
        execute: (_payload, { signal }) => (signals.push(signal), interval(10).pipe(map(String))),
      }),
    );
    const url = `${served.url}/v1/inference`;
    try {
      await own.stop();
      const refused = await postJson(url, { prompt: 'x' });
      expect(refused.status).toBe(503);
      expect(registry.jobCount()).toBe(0);
      expect(signals.length).toBe(1);
      expect(signals[0]!.aborted).toBe(true);
      await own.start();
      await waitFor(() => client.status === 'ready', 30_000, 'reconnect');
      const accepted = await postJson(url, { prompt: 'x' });
      expect(accepted.status).toBe(202);
    } finally {
      await served.close();
      await registry.dispose().catch(() => undefined);
      client.disconnect();
    }
    // A Redis process stopped and started again: slow on a busy machine, so the bound is generous.
  }, 90_000);

  // 7. Swallowed failures.
  test('a tailed key of the wrong type fails its reader with BackendError, warned once with its key; other readers go on', async () => {
    const log = recorder();
    const a = make();
    const b = make({ logger: log });
    await Promise.all([a.ready(), b.ready()]);
    const bad = a.createJob();
    const good = a.createJob();
    a.emit(bad, 'x');
    a.emit(good, 'y');
    await a.flush();
    const rb = collect(b.tokens$(bad));
    const rg = collect(b.tokens$(good));
    await waitFor(() => rb.values.length === 1 && rg.values.length === 1, 5000, 'first tokens');
    await admin.del(K.tokens(bad));
    await admin.set(K.tokens(bad), 'not a stream');
    await waitFor(() => rb.error !== undefined, 5000, 'bad reader ends');
    expect(rb.error).toBeInstanceOf(BackendError);
    a.emit(good, 'z');
    a.updateState(good, 'completed');
    await rg.done;
    expect(rg.values.map((v) => v.token)).toEqual(['y', 'z']);
    // Bad data, not an outage: one warning naming the key, no error, nothing failing.
    expect(log.lines.filter((l) => l.includes(K.tokens(bad)))).toHaveLength(1);
    expect(log.lines.filter((l) => l.startsWith('error'))).toEqual([]);
    expect(b.stats().backend?.failing).toBe(0);
    await admin.del(K.tokens(bad));
  }, 20_000);

  test('without CLIENT commands (as managed Redis often forbids) a new reader gets its first token at once, not after blockMs', async () => {
    const user = `jr-noclient-${process.pid}`;
    await admin.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all', '-client', '+client|setname');
    try {
      const url = REDIS_URL.replace('redis://', `redis://${user}:pw@`);
      const log = recorder();
      const a = make({ url, blockMs: 10_000, logger: log });
      const b = make({ url, blockMs: 10_000, logger: log });
      await Promise.all([a.ready(), b.ready()]);
      // Both blocking readers (this test's user has no other) are blocked on their XREAD.
      await waitFor(
        async () =>
          (await clientList(admin)).filter(
            (c) =>
              c.user === user && c.name?.endsWith(':reader0') && c.cmd === 'xread' && c.flags?.includes('b'),
          ).length === 2,
        5000,
        'the blocking readers in their XREAD',
      );
      const id = a.createJob();
      a.emit(id, 'x');
      await a.flush();
      const t0 = Date.now();
      const r = collect(b.tokens$(id));
      // Its first token read, the reader has joined the XREAD that blocks for blockMs: the live token
      // reaches it only if that read is woken.
      await waitFor(() => r.values.length === 1, 3000, 'the first token');
      a.emit(id, 'live');
      await waitFor(() => r.values.length === 2, 3000, 'the live token');
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(log.lines).toEqual([]);
      r.unsubscribe();
    } finally {
      await Promise.all(registries.splice(0).map((r) => r.dispose()));
      await admin.call('ACL', 'DELUSER', user);
    }
  }, 20_000);

  test('lease renewal and blocking reads that fail are logged once per outage, and their recovery once', async () => {
    const user = `jr-acl-${process.pid}`;
    const allow = ['on', '>pw', '~*', '&*', '+@all'];
    await admin.call('ACL', 'SETUSER', user, 'reset', ...allow);
    try {
      const url = REDIS_URL.replace('redis://', `redis://${user}:pw@`);
      const log = recorder();
      const a = make();
      const b = make({ url, logger: log, blockMs: 200 });
      await Promise.all([a.ready(), b.ready()]);
      const id = a.createJob();
      a.emit(id, 'x');
      await a.flush();
      const r = collect(b.tokens$(id));
      await waitFor(() => r.values.length === 1, 5000, 'first token');
      await admin.call('ACL', 'SETUSER', user, '-set', '-xread');
      // Past the lease the reader is told, instead of waiting on reads that fail; by then renewals (every
      // third of a lease) and reads (backing off from 50 ms) have each failed several times.
      const errors = (): string[] => log.lines.filter((l) => l.startsWith('error'));
      await waitFor(
        () =>
          r.error !== undefined &&
          errors().some((l) => l.includes('lease')) &&
          errors().some((l) => l.includes('blocking reads')),
        LEASE * 5,
        'the outage logged and the reader told',
      );
      expect(errors().filter((l) => l.includes('lease'))).toHaveLength(1);
      expect(errors().filter((l) => l.includes('blocking reads'))).toHaveLength(1);
      expect(r.error).toBeInstanceOf(BackendError);
      await admin.call('ACL', 'SETUSER', user, '+set', '+xread');
      await waitFor(
        () => log.lines.filter((l) => l.includes('works again')).length >= 2,
        5000,
        'recovery lines',
      );
    } finally {
      await Promise.all(registries.splice(0).map((r) => r.dispose()));
      await admin.call('ACL', 'DELUSER', user);
    }
  }, 20_000);
  test('a job Redis lost is logged and restored once, however many of its writes in flight report it lost', async () => {
    const log = recorder();
    const r = make({ url: own.url, logger: log });
    await r.ready();
    const id = r.createJob();
    r.emit(id, 't0');
    await r.flush();
    // Redis loses the job's hash, and its stream holds an end: every later token run is refused, and each
    // refusal, checked against the stream and the hash, finds the job gone.
    await own.admin.xadd(K.tokens(id), '*', 'end', 'failed', 'error', 'gone', 'count', '1');
    await own.admin.del(K.meta(id));
    // Twenty ticks of writes queue up behind a pause, so all twenty refusals come back together.
    await own.admin.call('CLIENT', 'PAUSE', '300', 'WRITE');
    for (let i = 1; i <= 20; i++) {
      r.emit(id, `t${i}`);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor(async () => (await own.admin.hget(K.meta(id), 'state')) === 'failed', 5000, 'restored');
    await r.flush();
    // A fixed wait, as the check is that nothing more happens: no later report logs or restores again.
    await sleep(200);
    expect(r.getJob(id)!.state).toBe('failed');
    expect(log.lines.filter((l) => l.includes('Redis lost job'))).toHaveLength(1);
    // One restore: one stateChanged event for it on the shard's stream.
    const events = await own.admin.xrange(K.events(K.shardOf(id)), '-', '+');
    const restores = events.filter(
      ([, f]) => f.includes(id) && f.includes('stateChanged') && f.includes('failed'),
    );
    expect(restores).toHaveLength(1);
  }, 20_000);
  test("the owner answers a job's end (findJob, listJobs) once Redis has it, as its readers learn it", async () => {
    const r = make({ url: own.url });
    const other = make({ url: own.url });
    await Promise.all([r.ready(), other.ready()]);
    const id = r.createJob();
    r.emit(id, 't0');
    await r.flush();
    await own.stop();
    r.updateState(id, 'completed');
    // This process's own view changes at once; what it answers for every process waits for Redis.
    expect(r.getJob(id)!.state).toBe('completed');
    let found: string | undefined;
    let listed: string | undefined;
    void r.findJob(id).then((s) => (found = s?.state));
    void r.listJobs().then((all) => (listed = all.find((s) => s.id === id)?.state));
    // A fixed wait, as the check is that no answer comes while Redis is down.
    await sleep(400);
    expect(found).toBeUndefined();
    expect(listed).toBeUndefined();
    await own.start();
    await waitFor(() => found === 'completed' && listed === 'completed', 10_000, 'answered once stored');
    expect((await other.findJob(id))!.state).toBe('completed');
  }, 30_000);

  test('an end whose write failed to reach Redis is written again until it does; its readers end only then', async () => {
    // A client that fails a command after one reconnect attempt: the end's batch fails while Redis is down.
    const client = new Redis(own.url, { maxRetriesPerRequest: 1, lazyConnect: true });
    client.on('error', () => undefined);
    const log = recorder();
    const r = make({ redis: client, logger: log });
    const other = make({ url: own.url });
    try {
      await Promise.all([r.ready(), other.ready()]);
      const id = r.createJob();
      r.emit(id, 't0');
      await r.flush();
      const local = collect(r.tokens$(id));
      const remote = collect(other.tokens$(id));
      await waitFor(() => local.values.length === 1 && remote.values.length === 1, 5000, 'first token');
      await own.stop();
      r.updateState(id, 'completed');
      await waitFor(
        () => log.lines.some((l) => l.includes('Redis writes')),
        10_000,
        'the failed batch logged',
      );
      // A fixed wait, as the check is that the reader does not end while the end is not stored.
      await sleep(300);
      expect(local.completed).toBe(false);
      await own.start();
      await waitFor(() => local.completed && remote.completed, 10_000, 'both readers completed');
      expect((await other.findJob(id))!.state).toBe('completed');
      expect(await own.admin.hget(K.meta(id), 'state')).toBe('completed');
    } finally {
      await Promise.all(registries.splice(0).map((x) => x.dispose().catch(() => undefined)));
      client.disconnect();
    }
  }, 40_000);
  test('a cancel carried out by the owner is answered true even when Redis lost the job meanwhile', async () => {
    // B's command connection and the one that deletes the job's hash are named, to be found in CLIENT LIST.
    const client = new Redis(own.url, { lazyConnect: true, connectionName: 'faults-cancel-b' });
    client.on('error', () => undefined);
    const other = new Redis(own.url, { connectionName: 'faults-cancel-del' });
    const a = make({ url: own.url });
    const b = make({ redis: client });
    // Whether Redis holds back a write of the named connection, `cmd` or one that `cmd` waits behind
    // (the connection's own sweep may have been held first; what comes after it waits in its query buffer).
    const held = async (name: string, cmd: string): Promise<boolean> =>
      (await clientList(own.admin)).some(
        (c) => c.name === name && c.flags?.includes('b') && (c.cmd === cmd || Number(c.qbuf) > 0),
      );
    try {
      await Promise.all([a.ready(), b.ready()]);
      const id = a.createJob();
      a.emit(id, 't0');
      await a.flush();
      // Writes wait behind a pause: the cancel request goes in first, then the job's hash is lost, so the
      // owner's cancel finds the job gone and restores it as cancelled.
      await own.admin.call('CLIENT', 'PAUSE', '5000', 'WRITE');
      const answer = b.cancel(id, 'stop');
      await waitFor(() => held('faults-cancel-b', 'xadd'), 5000, 'the cancel request held by the pause');
      void other.del(K.meta(id));
      await waitFor(() => held('faults-cancel-del', 'del'), 5000, 'the delete held behind it');
      await own.admin.call('CLIENT', 'UNPAUSE');
      expect(await answer).toBe(true);
      expect(a.getJob(id)!.state).toBe('cancelled');
      expect(await own.admin.hget(K.meta(id), 'state')).toBe('cancelled');
    } finally {
      await own.admin.call('CLIENT', 'UNPAUSE');
      await Promise.all(registries.splice(0).map((x) => x.dispose().catch(() => undefined)));
      other.disconnect();
      client.disconnect();
    }
  }, 20_000);
  test('a lease renewal Redis does not answer (paused) is logged once as an outage, and its recovery once', async () => {
    const log = recorder();
    const r = make({ url: own.url, logger: log });
    await r.ready();
    await own.admin.call('CLIENT', 'PAUSE', String(LEASE * 2), 'WRITE');
    await waitFor(() => log.lines.some((l) => l.includes('got no answer')), 5000, 'the slow renewal logged');
    await waitFor(() => log.lines.some((l) => l.includes('lease renewal works again')), 5000, 'recovery');
    expect(log.lines.filter((l) => l.includes('got no answer'))).toHaveLength(1);
    expect(log.lines.filter((l) => l.includes('lease renewal works again'))).toHaveLength(1);
  }, 20_000);
  // A cancel whose answer takes longer than the retention (Redis paused, a reconnect) found the job gone.
  const presets = [
    {
      preset: 'DELETE /v1/inference/:id',
      handler: (r: JobRegistry<string>) =>
        createJobHandler(r, { execute: () => interval(10).pipe(map(String)) }),
      send: (base: string, id: string) => fetch(`${base}/v1/inference/${id}`, { method: 'DELETE' }),
      expected: (id: string) => ({ job_id: id, state: 'cancelled', error: 'cancelled by request' }),
    },
    {
      preset: 'POST /v1/responses/:id/cancel',
      handler: (r: JobRegistry<string>) =>
        createResponsesHandler(r, { execute: () => interval(10).pipe(map(String)), toPayload: () => ({}) }),
      send: (base: string, id: string) => fetch(`${base}/v1/responses/resp_${id}/cancel`, { method: 'POST' }),
      expected: (id: string) => ({ id: `resp_${id}`, status: 'cancelled' }),
    },
  ];
  test.each(presets)(
    '$preset whose cancel took effect answers 200 cancelled even when the job expired before the answer',
    async ({ handler: handlerOf, send, expected }) => {
      const a = make({ url: own.url, retention: 200 });
      await a.ready();
      // The blocking readers' connections, by id.
      const readers = async (): Promise<string[]> =>
        ((await own.admin.call('CLIENT', 'LIST')) as string)
          .split('\n')
          .filter((line) => /name=\S*:reader/.test(line))
          .map((line) => /id=(\d+)/.exec(line)![1]!);
      const ofA = new Set(await readers());
      // B's connections come back 2 s after they are cut: B learns the cancel's end only then, when the
      // job (retention 200 ms) has expired.
      const client = new Redis(own.url, { lazyConnect: true, retryStrategy: () => 2000 });
      client.on('error', () => undefined);
      const b = new JobRegistry<string>({
        retention: 200,
        backend: redisBackend({ redis: client, prefix, leaseMs: 5000, blockMs: 1000, logger: recorder() }),
      });
      registries.push(b);
      await b.ready();
      const served = await serveHandler(handlerOf(b));
      const base = served.url;
      try {
        const id = a.createJob();
        a.emit(id, 't0');
        await a.flush();
        const readersOfB = (await readers()).filter((client) => !ofA.has(client));
        expect(readersOfB.length).toBeGreaterThan(0);
        for (const client of readersOfB) await own.admin.call('CLIENT', 'KILL', 'ID', client);
        const res = await send(base, id);
        const body = (await res.json()) as Record<string, unknown>;
        // The job was cancelled, and had expired by the time B learnt it.
        expect(a.getJob(id)).toBeUndefined();
        expect(res.status).toBe(200);
        expect(body).toMatchObject(expected(id));
      } finally {
        await served.close();
        await b.dispose().catch(() => undefined);
        client.disconnect();
      }
    },
    30_000,
  );
  test('a job that ends and outlives its retention while its POST waits for a paused Redis is kept for its retention after the 202', async () => {
    // Retention in virtual time: 2 s, and a grace that ends 3.5 s after the job's end.
    const clock = virtualClock();
    const r = new JobRegistry<string>({
      retention: 2000,
      retentionGrace: 1500,
      scheduler: clock.scheduler,
      backend: redisBackend({ url: own.url, prefix, leaseMs: LEASE, blockMs: 1000, logger: quiet }),
    });
    registries.push(r);
    await r.ready();
    const created: string[] = [];
    const sub = r.events$.subscribe((e) => e.type === 'created' && created.push(e.jobId));
    const served = await serveHandler(
      createJobHandler(r, {
        execute: () => {
          throw new Error('the model is down');
        },
      }),
    );
    try {
      await own.admin.call('CLIENT', 'PAUSE', '1500', 'WRITE');
      const post = postJson(`${served.url}/v1/inference`, { prompt: 'x' });
      await waitFor(
        () => created.length === 1 && r.getJob(created[0]!)?.state === 'failed',
        5000,
        'the failure',
      );
      const id = created[0]!;
      // Past its retention while the POST still waits for Redis: the job is kept (its end is not stored).
      clock.advance(3000);
      expect(r.hasJob(id)).toBe(true);
      const answer = await post;
      expect(answer.status).toBe(202);
      expect(JSON.parse(answer.body).job_id).toBe(id);
      await r.flush();
      // Its client learnt the id only now: the job is kept for its retention from here, not removed at the
      // next check of a retention long over.
      clock.advance(1500);
      expect(r.hasJob(id)).toBe(true);
      const got = await fetch(`${served.url}/v1/inference/${id}`);
      expect(got.status).toBe(200);
      expect(await got.json()).toMatchObject({ job_id: id, state: 'failed' });
      clock.advance(1000);
      expect(r.hasJob(id)).toBe(false);
    } finally {
      sub.unsubscribe();
      await served.close();
    }
  }, 20_000);
  test('a process whose command connection is cut keeps renewing its lease: no other process takes it for dead', async () => {
    const observer = make({ url: own.url });
    // B's command connection comes back 8 s after it is cut; its lease has a connection of its own.
    const client = new Redis(own.url, {
      lazyConnect: true,
      connectionName: 'faults-b-cmd',
      retryStrategy: () => 8000,
    });
    client.on('error', () => undefined);
    const b = make({ redis: client });
    try {
      await Promise.all([observer.ready(), b.ready()]);
      const id = b.createJob();
      b.emit(id, 't0');
      await b.flush();
      const list = (await own.admin.call('CLIENT', 'LIST')) as string;
      const cmd = list.split('\n').find((line) => line.includes('name=faults-b-cmd '));
      expect(cmd).toBeDefined();
      await own.admin.call('CLIENT', 'KILL', 'ID', /id=(\d+)/.exec(cmd!)![1]!);
      // Long enough for the renewals' follow-up work (the live jobs' TTL refresh, every 9th renewal) to
      // wait on the cut connection, and for a lease left unrenewed to lapse and be reaped.
      await sleep(LEASE * 7);
      expect(b.getJob(id)!.state).toBe('running');
      expect((await observer.findJob(id))!.state).toBe('running');
    } finally {
      await Promise.all(registries.splice(0).map((x) => x.dispose().catch(() => undefined)));
      client.disconnect();
    }
  }, 30_000);
});
