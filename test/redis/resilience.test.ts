import { Redis } from 'ioredis';
import { JobRegistry, JobNotFoundError, InvalidArgumentError } from '../../src/core/index.js';
import { Keys, redisBackend, type BackendLogger } from '../../src/redis/index.js';
import { collect, describeIf, sleep, waitFor } from '../helpers/collect.js';
import { REDIS_URL, clientList, haveRedis, quietLogger, registriesOn, testPrefix } from '../helpers/redis.js';

const available = await haveRedis();
const prefix = testPrefix('resilience');
const K = new Keys(prefix, 8);

describeIf(available)('redis backend: dropped connections and bad input', () => {
  const on = registriesOn(prefix, { leaseMs: 2000, blockMs: 1000, logger: quietLogger });
  const admin = on.admin;
  const make = (
    extra: { logger?: BackendLogger; redis?: Redis; blockMs?: number } = {},
  ): JobRegistry<string> => on.make(extra);
  // The command connection of the registry whose writes are bounded, named to be found in CLIENT LIST.
  const bounded = new Redis(REDIS_URL, { lazyConnect: true, connectionName: `${prefix}bounded` });
  afterAll(async () => {
    await on.close();
    bounded.disconnect();
  });

  test('CLIENT KILL of every backend connection mid-stream loses and repeats nothing', async () => {
    const a = make();
    const b = make();
    await Promise.all([a.ready(), b.ready()]);
    const id = a.createJob();
    const r = collect(b.tokens$(id));
    for (let i = 0; i < 200; i++) {
      a.emit(id, `t${i}`);
      if (i % 20 === 0) await sleep(5);
      if (i === 100) {
        // Kill the readers and writers of both registries (their connection names carry our prefix).
        const list = String(await admin.call('CLIENT', 'LIST')).split('\n');
        const ours = list.filter((l) => l.includes(prefix)).map((l) => /(?:^|\s)id=(\d+)/.exec(l)![1]!);
        expect(ours.length).toBeGreaterThanOrEqual(4);
        for (const cid of ours) await admin.call('CLIENT', 'KILL', 'ID', cid);
      }
    }
    a.updateState(id, 'completed');
    await a.flush();
    await r.done;
    expect(r.completed).toBe(true);
    expect(r.values.map((v) => v.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(r.values.map((v) => v.token)).toEqual(Array.from({ length: 200 }, (_, i) => `t${i}`));
  }, 30_000);

  test('ids that could reach Redis as patterns or hash tags are refused before any Redis call', async () => {
    const commands: string[] = [];
    const spy = new Redis(REDIS_URL, { lazyConnect: true });
    const send = spy.sendCommand.bind(spy);
    spy.sendCommand = ((command: { name: string; args: unknown[] }) => {
      commands.push(`${command.name} ${command.args.map(String).join(' ')}`);
      return send(command as never);
    }) as typeof spy.sendCommand;
    const r = new JobRegistry<string>({ backend: redisBackend({ redis: spy, prefix }) });
    await r.ready();
    const bad = ['job-*', 'job-{x}', 'job x', '{', '}', '*', 'a'.repeat(5000), 'job-\r\nDEL', ''];
    commands.length = 0;
    for (const id of bad) {
      await expect(r.findJob(id)).resolves.toBeUndefined();
      await expect(r.cancel(id)).rejects.toBeInstanceOf(JobNotFoundError);
      const t = collect(r.tokens$(id));
      const s = collect(r.state$(id));
      await Promise.all([t.done, s.done]);
      expect(t.error).toBeInstanceOf(JobNotFoundError);
      expect(s.error).toBeInstanceOf(JobNotFoundError);
    }
    // A key's base names its shard in braces (`<prefix>{s0.10}:live`), and the periodic sweep may send
    // such keys meanwhile: only what follows the base can carry a bad id.
    const base = new RegExp(`${prefix}\\{[^}]*\\}:`, 'g');
    const sent = commands.map((c) => c.replaceAll(base, ''));
    expect(sent.filter((c) => bad.some((id) => id !== '' && c.includes(id)))).toEqual([]);
    await r.dispose();
    spy.disconnect();
  });

  test('foreign or corrupt entries under the prefix are skipped with a warning', async () => {
    const warnings: string[] = [];
    const logger = { warn: (m: string) => warnings.push(m), error: (m: string) => warnings.push(m) };
    const a = make();
    const b = make({ logger });
    await Promise.all([a.ready(), b.ready()]);
    const good = a.createJob();
    await a.flush();
    await admin.zadd(K.jobs(0), 1, 'job-{evil}*');
    await admin.zadd(K.jobs(K.shardOf('job-corrupt')), 2, 'job-corrupt');
    await admin.hset(K.meta('job-corrupt'), 'state', 'exploded', 'created_at', 'never');
    const seen = collect(b.events$);
    await admin.xadd(K.events(K.shardOf(good)), '*', 'garbage', 'yes');
    const list = await b.listJobs();
    expect(list.map((j) => j.id)).toContain(good);
    expect(list.map((j) => j.id)).not.toContain('job-corrupt');
    a.updateState(good, 'completed');
    await a.flush();
    await waitFor(
      () => seen.values.some((e) => e.jobId === good && e.type === 'stateChanged'),
      5000,
      'events after garbage',
    );
    seen.unsubscribe();
    expect(warnings.some((w) => w.includes('foreign entry'))).toBe(true);
    expect(warnings.some((w) => w.includes('corrupt job hash'))).toBe(true);
    expect(warnings.some((w) => w.includes(K.events(K.shardOf(good))))).toBe(true);
    // Bad data is no outage: the backend reports nothing failing.
    expect(b.stats().backend?.failing).toBe(0);
  });

  test('readiness tells the truth: each corruption is logged once with its key and opens no outage', async () => {
    const warnings: string[] = [];
    const errors: string[] = [];
    const logger = { warn: (m: string) => warnings.push(m), error: (m: string) => errors.push(m) };
    const a = make();
    // A short block: a skipped key is read again after 10 blockMs.
    const b = make({ logger, blockMs: 200 });
    await Promise.all([a.ready(), b.ready()]);
    const failing = (): number | undefined => b.stats().backend?.failing;
    const logged = (key: string): Promise<void> =>
      waitFor(() => warnings.some((w) => w.includes(key)), 5000, `a warning naming ${key}`);

    // A foreign field in an events stream, twice: one warning.
    const shard = 3;
    await admin.xadd(K.events(shard), '*', 'format', 'v99');
    await admin.xadd(K.events(shard), '*', 'format', 'v99');
    await logged(K.events(shard));
    // A bad id in a job index, read by a list.
    await admin.zadd(K.jobs(5), 1, 'bad id!');
    await b.listJobs();
    await logged(K.jobs(5));
    // A job hash whose state is not a state.
    const bogus = a.createJob();
    await a.flush();
    await admin.hset(K.meta(bogus), 'state', 'exploded');
    expect(await b.findJob(bogus)).toBeUndefined();
    await logged(K.meta(bogus));
    // An events key replaced by a string: its shard is skipped, the others go on.
    await admin.del(K.events(6));
    await admin.set(K.events(6), 'not a stream');
    await logged(K.events(6));
    const seen = collect(b.events$);
    const after = a.createJob();
    a.updateState(after, 'completed');
    await a.flush();
    if (K.shardOf(after) !== 6)
      await waitFor(() => seen.values.some((e) => e.jobId === after && e.type === 'stateChanged'));
    expect(failing()).toBe(0);
    expect(errors).toEqual([]);
    expect(warnings.filter((w) => w.includes(K.events(shard)))).toHaveLength(1);
    // Once the string is gone, that shard's events flow again.
    await admin.del(K.events(6));
    let onSix = a.createJob();
    while (K.shardOf(onSix) !== 6) {
      a.removeJob(onSix);
      onSix = a.createJob();
    }
    a.updateState(onSix, 'completed');
    await a.flush();
    await waitFor(() => seen.values.some((e) => e.jobId === onSix && e.type === 'stateChanged'), 10_000);
    // This process's own wake stream replaced by a string: it is made again, and reads go on.
    const wakes = (await admin.keys(`${prefix}*wake:*`)).filter((k) => k.includes('wake:'));
    expect(wakes.length).toBeGreaterThan(0);
    for (const w of wakes) await admin.set(w, 'not a stream');
    const later = a.createJob();
    a.updateState(later, 'completed');
    await a.flush();
    await waitFor(() => seen.values.some((e) => e.jobId === later && e.type === 'stateChanged'), 10_000);
    seen.unsubscribe();
    expect(failing()).toBe(0);
  });

  test('a snapshot read by another process says when the first token came', async () => {
    const a = make();
    const b = make();
    await Promise.all([a.ready(), b.ready()]);
    const id = a.createJob();
    await a.flush();
    expect((await b.findJob(id))?.firstTokenAt).toBeUndefined();
    a.emit(id, 'first');
    a.emit(id, 'second');
    await a.flush();
    const local = a.getJob(id)!.firstTokenAt!;
    const remote = (await b.findJob(id))!.firstTokenAt!;
    expect(Math.abs(remote.toMillis() - local.toMillis())).toBeLessThan(1000);
    expect((await b.listJobs()).find((j) => j.id === id)?.firstTokenAt?.toMillis()).toBe(remote.toMillis());
  });

  test('writes waiting for Redis are bounded by maxPendingWrites, then refused loudly with BackendError', async () => {
    const r = on.make({ maxPendingWrites: 50, redis: bounded });
    await r.ready();
    const id = r.createJob();
    await r.flush();
    // Hold Redis for a moment (as a stall or a restart would): writes queue up to the bound.
    await admin.call('CLIENT', 'PAUSE', '5000', 'WRITE');
    const firstBatch = Array.from({ length: 40 }, (_, i) => r.emit(id, `t${i}`));
    let refused: unknown;
    try {
      // The first batch went out, and Redis holds it.
      await waitFor(
        async () =>
          (await clientList(admin)).some((c) => c.name === `${prefix}bounded` && c.flags?.includes('b')),
        3000,
        'the first batch held by Redis',
      );
      try {
        for (let i = 0; i < 100; i++) r.emit(id, `more${i}`);
      } catch (e) {
        refused = e;
      }
    } finally {
      await admin.call('CLIENT', 'UNPAUSE');
    }
    expect(firstBatch).toHaveLength(40);
    expect(refused).toMatchObject({
      code: 'BACKEND_ERROR',
      message: expect.stringContaining('maxPendingWrites'),
    });
    await r.flush();
    // Once Redis is back the queued writes land and new ones are taken again.
    r.emit(id, 'after');
    await r.flush();
    // Nothing was half-written: Redis holds exactly the tokens the registry accepted.
    expect(await admin.xlen(K.tokens(id))).toBe(r.getJob(id)!.tokenCount);
    const elsewhere = make();
    await elsewhere.ready();
    expect((await elsewhere.findJob(id))!.tokenCount).toBe(r.getJob(id)!.tokenCount);
  });

  test('a state event is written only when Redis took the transition (a remote end that won a race stays the only one)', async () => {
    const a = make();
    await a.ready();
    const id = a.createJob();
    a.emit(id, 'x');
    await a.flush();
    // Another process ended the job in Redis a moment before this one completes it locally.
    await admin.hset(K.meta(id), 'state', 'cancelled', 'error', 'cancelled elsewhere');
    a.updateState(id, 'completed');
    a.removeJob(id);
    await a.flush();
    const kinds = async (): Promise<Array<string | undefined>> =>
      (await admin.xrange(K.events(K.shardOf(id)), '-', '+'))
        .map(([, f]) => f)
        .filter((f) => f[3] === id)
        .map((f) => (f[1] === 'stateChanged' ? `to:${f[f.indexOf('to') + 1]}` : f[1]));
    await waitFor(async () => (await kinds()).includes('removed'), 5000, 'the removal written');
    // A fixed wait, as the check is that nothing more is written for the job.
    await sleep(50);
    expect(await kinds()).toEqual(['created', 'to:running', 'removed']);
  });

  test('an unreachable Redis fails fast with an error naming the URL', async () => {
    const t0 = Date.now();
    const r = new JobRegistry({ backend: redisBackend({ url: 'redis://127.0.0.1:1/0' }) });
    await expect(r.ready()).rejects.toMatchObject({
      code: 'BACKEND_ERROR',
      message: expect.stringContaining('redis://127.0.0.1:1/0'),
    });
    expect(Date.now() - t0).toBeLessThan(6000);
    // Reads then fail with the same typed error (HTTP answers 503), never a bare ioredis error.
    await expect(r.listJobs()).rejects.toMatchObject({ code: 'BACKEND_ERROR' });
    await expect(r.findJob('job-x')).rejects.toMatchObject({ code: 'BACKEND_ERROR' });
    await r.dispose().catch(() => undefined);
  });

  test('dispose() right after construction leaves no connection or timer behind', async () => {
    const { spawnSync } = await import('node:child_process');
    const script = `
      import { JobRegistry } from './src/core/index.ts';
      import { redisBackend } from './src/redis/index.ts';
      const r = new JobRegistry({ backend: redisBackend({ url: '${REDIS_URL}', prefix: '${prefix}' }) });
      await r.dispose();
      const s = new JobRegistry({ backend: redisBackend({ url: '${REDIS_URL}', prefix: '${prefix}' }) });
      await s.ready();
      s.createJob();
      await s.dispose();
      console.log('disposed');
    `;
    const out = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    expect(out.stdout.trim()).toBe('disposed');
    expect(out.status).toBe(0);
  });

  test('a bad prefix or option is refused', () => {
    expect(() => redisBackend({ url: REDIS_URL, prefix: 'a{b}' })).toThrow(InvalidArgumentError);
    expect(() => redisBackend({ url: REDIS_URL, prefix: 'a*' })).toThrow(InvalidArgumentError);
    expect(() => redisBackend({} as never)).toThrow(InvalidArgumentError);
    expect(() => redisBackend({ url: REDIS_URL, leaseMs: -1 })).toThrow(InvalidArgumentError);
  });

  test("retention expires a terminal job's keys in Redis", async () => {
    const a = on.make({}, { retention: 300 });
    await a.ready();
    const id = a.createJob();
    a.emit(id, 'x');
    a.updateState(id, 'completed');
    await a.flush();
    const ttl = await admin.pttl(K.tokens(id));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(300);
    await waitFor(async () => (await admin.exists(K.meta(id), K.tokens(id))) === 0, 5000, 'expiry');
  });
});
