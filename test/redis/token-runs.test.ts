/**
 * A job's consecutive tokens of one tick reach Redis as one TOKENS script call (a lone token as a plain
 * XADD): the stored entries, their ids, the trim and the TTL are those of one XADD per token, a mixed
 * burst keeps its types, and a run Redis refuses part of fails the job instead of leaving a gap.
 */
import type { JobRegistry } from '../../src/core/index.js';
import { Keys } from '../../src/redis/index.js';
import { collect, describeIf, waitFor } from '../helpers/collect.js';
import { haveRedis, quietLogger, registriesOn, testPrefix } from '../helpers/redis.js';

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
});
