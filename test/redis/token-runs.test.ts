/**
 * A job's consecutive tokens of one tick form a run, and a tick's runs of one shard reach Redis as one
 * TOKEN_RUNS script call (a shard's lone run as TOKENS, a lone token as a plain XADD): the stored
 * entries, their ids, the trim and the TTL are those of one XADD per token, a mixed burst keeps its
 * types, and a run Redis refuses part of fails its job (and only it) instead of leaving a gap.
 */
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { JobRegistry } from '../../src/core/index.js';
import { Keys, redisBackend } from '../../src/redis/index.js';
import { TOKEN_RUNS, TOKENS } from '../../src/redis/scripts.js';
import { collect, describeIf, waitFor } from '../helpers/collect.js';
import { REDIS_URL, haveRedis, quietLogger, registriesOn, testPrefix } from '../helpers/redis.js';

const available = await haveRedis();
const prefix = testPrefix('token-runs');
const K = new Keys(prefix, 8);

describeIf(available)('redis backend: token runs', () => {
  const on = registriesOn(prefix, { leaseMs: 2000, blockMs: 1000, logger: quietLogger });
  const admin = on.admin;
  const make = (replayLimit?: number): JobRegistry<unknown> =>
    on.make<unknown>({}, replayLimit !== undefined ? { replayLimit } : {});
  afterAll(() => on.close());

  test('a burst is stored as one entry per token, ids 0-<seq+1>, with the live TTL; a reader elsewhere gets each once', async () => {
    const a = make();
    const b = make();
    await Promise.all([a.ready(), b.ready()]);
    const id = a.createJob();
    await a.flush();
    const r = collect(b.tokens$(id));
    for (let i = 0; i < 1300; i++) a.emit(id, `t${i}`); // longer than one run: split in order
    a.emit(id, 'last alone');
    await a.flush();
    const entries = await admin.xrange(K.tokens(id), '-', '+');
    expect(entries.map(([eid]) => eid)).toEqual(Array.from({ length: 1301 }, (_, i) => `0-${i + 1}`));
    expect(entries[0]![1]).toEqual(['s', 't0']);
    expect(entries[1300]![1]).toEqual(['s', 'last alone']);
    expect(await admin.pttl(K.tokens(id))).toBeGreaterThan(0);
    a.updateState(id, 'completed');
    await r.done;
    expect(r.completed).toBe(true);
    expect(r.values.map((v) => v.seq)).toEqual(Array.from({ length: 1301 }, (_, i) => i));
  });

  test('strings and JSON tokens mixed in one tick keep their types and order', async () => {
    const a = make();
    const b = make();
    await Promise.all([a.ready(), b.ready()]);
    const id = a.createJob();
    const tokens: unknown[] = ['a', { x: 1 }, { y: [2] }, 'b', 'c', 3, null, 'd'];
    for (const t of tokens) a.emit(id, t);
    a.updateState(id, 'completed');
    await a.flush();
    const r = collect(b.tokens$(id));
    await r.done;
    expect(r.values.map((v) => v.token)).toEqual(tokens);
  });

  test('a bounded replay buffer is trimmed after a burst as after single writes', async () => {
    const a = make(5);
    await a.ready();
    const id = a.createJob();
    for (let i = 0; i < 20; i++) a.emit(id, `t${i}`);
    await a.flush();
    const entries = await admin.xrange(K.tokens(id), '-', '+');
    expect(entries.map(([eid]) => eid)).toEqual(['0-16', '0-17', '0-18', '0-19', '0-20']);
  });

  test('a run Redis refuses (the stream already holds entries past its start) fails the job; nothing is skipped silently', async () => {
    const a = make();
    await a.ready();
    const id = a.createJob();
    await a.flush();
    // Someone else's entries at the ids of this job's first two tokens.
    await admin.xadd(K.tokens(id), '0-1', 's', 'foreign');
    await admin.xadd(K.tokens(id), '0-2', 's', 'foreign');
    for (let i = 0; i < 4; i++) a.emit(id, `t${i}`);
    await a.flush();
    await waitFor(() => a.getJob(id)?.state === 'failed', 5000);
    expect(a.getJob(id)?.error).toMatch(/refused token 3/);
  });

  test('a run whose entries are all there already (a resend) is taken as stored once', async () => {
    const a = make();
    await a.ready();
    const id = a.createJob();
    await a.flush();
    await admin.xadd(K.tokens(id), '0-1', 's', 't0');
    await admin.xadd(K.tokens(id), '0-2', 's', 't1');
    a.emit(id, 't0');
    a.emit(id, 't1');
    await a.flush();
    a.emit(id, 't2'); // the next tick's token goes on as usual
    await a.flush();
    a.updateState(id, 'completed');
    await a.flush();
    expect(a.getJob(id)?.state).toBe('completed');
    const entries = await admin.xrange(K.tokens(id), '-', '+');
    expect(entries.filter(([, f]) => f[0] === 's').map(([, f]) => f[1])).toEqual(['t0', 't1', 't2']);
  });

  test("a tick's tokens of many jobs go as one command per shard; each job's entries, TTL and end are as if written one by one", async () => {
    const client = new Redis(REDIS_URL);
    // monitor() opens a connection of its own beside the one it is called on: both are closed below.
    const watcher = new Redis(REDIS_URL);
    const monitor = await watcher.monitor();
    const a = new JobRegistry<string>({
      backend: redisBackend({ redis: client, prefix, logger: quietLogger }),
    });
    const b = make();
    try {
      await Promise.all([a.ready(), b.ready()]);
      const ids = Array.from({ length: 200 }, () => a.createJob());
      const big = a.createJob();
      await a.flush();
      for (const id of [...ids, big]) a.updateState(id, 'running');
      await a.flush();
      // Token writes this process sent for this test's jobs: XADDs, TOKENS and TOKEN_RUNS calls (not
      // the commands a script runs, nor transitions, whose keys include the token stream too).
      const ours = new Set([...ids, big].map((id) => K.tokens(id)));
      const tokenScripts = new Set(
        [TOKENS, TOKEN_RUNS].map((lua) => createHash('sha1').update(lua).digest('hex')),
      );
      let tokenCommands = 0;
      // MONITOR shows commands in the order Redis ran them: an ECHO of a marker, sent on the registry's
      // own connection, seen there means every command sent before it on that connection was seen too.
      const marks = new Map<string, () => void>();
      const mark = async (text: string): Promise<void> => {
        const shown = new Promise<void>((resolve) => marks.set(text, resolve));
        await client.echo(text);
        await shown;
      };
      monitor.on('monitor', (_time: string, args: string[], source: string) => {
        if (args[0]?.toLowerCase() === 'echo' && args[1] !== undefined) marks.get(args[1])?.();
        if (source === 'lua' || !args.some((x) => ours.has(x))) return;
        const name = args[0]!.toLowerCase();
        if (name === 'xadd' || (name === 'evalsha' && tokenScripts.has(args[1]!))) tokenCommands++;
      });
      await mark(`${prefix}before`); // MONITOR is on before the writes
      for (let i = 0; i < 1500; i++) a.emit(big, `b${i}`); // more than one command's worth: split in order
      for (let round = 0; round < 3; round++) for (const id of ids) a.emit(id, `${id}:${round}`);
      a.updateState(ids[0]!, 'completed'); // its runs go before its end, within the tick
      await a.flush();
      await mark(`${prefix}after`); // and has shown every write
      // 8 shards, one more for the shard of the job that ended, two more for the burst: not 600 XADDs.
      expect(tokenCommands).toBeGreaterThan(0);
      expect(tokenCommands).toBeLessThanOrEqual(11);
      for (const id of ids.slice(0, 20)) {
        const entries = await admin.xrange(K.tokens(id), '-', '+');
        const tokens = entries.filter(([, f]) => f[0] === 's');
        expect(tokens.map(([eid]) => eid)).toEqual(['0-1', '0-2', '0-3']);
        expect(tokens.map(([, f]) => f[1])).toEqual([0, 1, 2].map((k) => `${id}:${k}`));
        expect(await admin.pttl(K.tokens(id))).toBeGreaterThan(0);
      }
      const first = await admin.xrange(K.tokens(ids[0]!), '-', '+');
      expect(first.map(([, f]) => f[0])).toEqual(['s', 's', 's', 'end']);
      expect((await admin.xrange(K.tokens(big), '-', '+')).map(([eid]) => eid)).toEqual(
        Array.from({ length: 1500 }, (_, i) => `0-${i + 1}`),
      );
      const reads = [big, ...ids].map((id) => collect(b.tokens$(id)));
      for (const id of [big, ...ids.slice(1)]) a.updateState(id, 'completed');
      await Promise.all(reads.map((r) => r.done));
      expect(reads[0]!.values.map((v) => v.token)).toEqual(Array.from({ length: 1500 }, (_, i) => `b${i}`));
      reads.slice(1).forEach((r, i) => {
        expect(r.completed).toBe(true);
        expect(r.values.map((v) => v.token)).toEqual([0, 1, 2].map((k) => `${ids[i]}:${k}`));
      });
    } finally {
      monitor.disconnect();
      watcher.disconnect();
      await a.dispose();
      client.disconnect();
    }
  }, 30_000);

  test('a refused run among many jobs of one command fails its job only; the others are stored', async () => {
    const a = make();
    await a.ready();
    const ids = Array.from({ length: 12 }, () => a.createJob());
    await a.flush();
    const bad = ids[3]!;
    await admin.xadd(K.tokens(bad), '0-1', 's', 'foreign');
    for (let round = 0; round < 2; round++)
      for (const id of ids) for (const k of [0, 1]) a.emit(id, `${id}:${round * 2 + k}`);
    await a.flush();
    await waitFor(() => a.getJob(bad)?.state === 'failed', 5000);
    expect(a.getJob(bad)?.error).toMatch(/refused token/);
    for (const id of ids.filter((x) => x !== bad)) {
      expect(a.getJob(id)?.state).toBe('running');
      const entries = await admin.xrange(K.tokens(id), '-', '+');
      expect(entries.map(([, f]) => f[1])).toEqual([0, 1, 2, 3].map((k) => `${id}:${k}`));
    }
  });

  test('a lone token refused among many jobs (its key holds another type) fails its job only', async () => {
    const a = make();
    await a.ready();
    const ids = Array.from({ length: 12 }, () => a.createJob());
    await a.flush();
    const bad = ids[5]!;
    await admin.set(K.tokens(bad), 'not a stream');
    for (const id of ids) a.emit(id, `${id}:0`);
    await a.flush();
    await waitFor(() => a.getJob(bad)?.state === 'failed', 5000);
    for (const id of ids.filter((x) => x !== bad)) {
      expect(a.getJob(id)?.state).toBe('running');
      const entries = await admin.xrange(K.tokens(id), '-', '+');
      expect(entries).toEqual([['0-1', ['s', `${id}:0`]]]);
    }
  });

  test('with no token kept, a token refused because another process ended the job takes that end', async () => {
    const a = make(0);
    await a.ready();
    const ids = Array.from({ length: 6 }, () => a.createJob());
    for (const id of ids) a.emit(id, 'first');
    await a.flush();
    const ended = ids[2]!;
    // What another process's cancel writes: the end entry, and the state in the job's hash.
    await admin.xadd(K.tokens(ended), '*', 'end', 'cancelled', 'error', 'stopped elsewhere');
    await admin.hset(K.meta(ended), 'state', 'cancelled', 'error', 'stopped elsewhere');
    for (const id of ids) a.emit(id, 'second');
    await a.flush();
    await waitFor(() => a.getJob(ended)?.state === 'cancelled', 5000);
    for (const id of ids.filter((x) => x !== ended)) expect(a.getJob(id)?.state).toBe('running');
  });

  test('a bounded replay buffer is trimmed alike for lone tokens and bursts of many jobs in one tick', async () => {
    const a = make(5);
    await a.ready();
    const ids = Array.from({ length: 6 }, () => a.createJob());
    const burst = a.createJob();
    await a.flush();
    for (let round = 0; round < 20; round++) {
      for (const id of ids) a.emit(id, `t${round}`);
      if (round === 10) for (let i = 0; i < 20; i++) a.emit(burst, `t${i}`);
    }
    await a.flush();
    for (const id of [...ids, burst]) {
      const entries = await admin.xrange(K.tokens(id), '-', '+');
      expect(entries.map(([eid]) => eid)).toEqual(['0-16', '0-17', '0-18', '0-19', '0-20']);
    }
  });
});
