/**
 * What the safety work keeps across processes: a job's owner and the privacy of its error, token counts
 * (progress), a resume point ahead of what the owner flushed (the reader waits), and a slow reader's hold
 * on a job another process holds.
 */
import { Redis } from 'ioredis';
import { Observable, throwError } from 'rxjs';
import {
  JobFailedError,
  JobRegistry,
  ResumeAheadError,
  type JobProgress,
  type RegistryEvent,
  type TokenEvent,
} from '../../src/core/index.js';
import { redisBackend } from '../../src/redis/index.js';
import { collect, describeIf, waitFor } from '../helpers/collect.js';
import { REDIS_URL, dropPrefix, haveRedis, testPrefix } from '../helpers/redis.js';

const available = await haveRedis();
const prefix = testPrefix('tenancy');

describeIf(available)('safety across processes (Redis)', () => {
  const registries: JobRegistry<string>[] = [];
  const make = (options: { retention?: number; progressIntervalMs?: number } = {}) => {
    const r = new JobRegistry<string>({
      ...(options.retention !== undefined ? { retention: options.retention } : {}),
      progressInterval: 20,
      backend: redisBackend({
        url: REDIS_URL,
        prefix,
        leaseMs: 1000,
        blockMs: 500,
        progressIntervalMs: options.progressIntervalMs ?? 50,
      }),
    });
    registries.push(r);
    return r;
  };
  afterEach(async () => {
    await Promise.all(registries.splice(0).map((r) => r.dispose()));
  });
  afterAll(() => dropPrefix(prefix));

  test("another process sees a job's owner, and its private error as private", async () => {
    const a = make();
    const b = make();
    await Promise.all([a.ready(), b.ready()]);
    const seen: RegistryEvent[] = [];
    const sub = b.events$.subscribe((e) => seen.push(e));
    const id = a.createJob({ owner: 'alice' });
    a.executeAndStream(id, () => throwError(() => new Error('upstream refused: apiKey=sk-1')));
    await a.flush();
    await waitFor(async () => (await b.findJob(id))?.state === 'failed', 5000, 'the end on b');
    expect(await b.findJob(id)).toMatchObject({
      owner: 'alice',
      error: 'upstream refused: apiKey=sk-1',
      errorPrivate: true,
    });
    await waitFor(
      () => seen.some((e) => e.type === 'stateChanged' && e.to === 'failed'),
      5000,
      'events on b',
    );
    expect(seen.find((e) => e.type === 'created')).toMatchObject({ jobId: id, owner: 'alice' });
    expect(seen.find((e) => e.type === 'stateChanged' && e.to === 'failed')).toMatchObject({
      errorPrivate: true,
    });
    const reader = collect(b.tokens$(id));
    await reader.done;
    expect(reader.error).toBeInstanceOf(JobFailedError);
    expect((reader.error as JobFailedError).expose).toBe(false);
    sub.unsubscribe();
  });

  test("another process gets a job's token counts as progress$", async () => {
    const a = make();
    const b = make();
    await Promise.all([a.ready(), b.ready()]);
    const counts: JobProgress[] = [];
    const sub = b.progress$.subscribe((p) => counts.push(p));
    const id = a.createJob();
    for (let i = 0; i < 30; i++) a.emit(id, 't');
    await waitFor(() => counts.some((p) => p.jobId === id && p.tokenCount === 30), 5000, 'progress on b');
    sub.unsubscribe();
  });

  test('a resume point ahead of what the owner flushed waits on another process, and ends typed if the job ends short', async () => {
    const a = make();
    const b = make();
    await Promise.all([a.ready(), b.ready()]);
    const id = a.createJob();
    a.emit(id, 'a');
    await a.flush();
    // b's client saw seq 2 from somewhere: b waits for it instead of refusing.
    await expect(b.checkReadable(id, { after: 2 })).resolves.toMatchObject({ state: 'running' });
    const waiting: Array<TokenEvent<string>> = [];
    const ahead = collect(b.tokens$(id, { after: 2 }) as Observable<TokenEvent<string>>);
    ahead.values === undefined || waiting.push(...ahead.values);
    for (const t of ['b', 'c', 'd']) a.emit(id, t);
    await waitFor(() => ahead.values.length === 1, 5000, 'seq 3 on b');
    expect(ahead.values).toEqual([{ seq: 3, token: 'd' }]);
    a.updateState(id, 'completed');
    await ahead.done;
    expect(ahead.error).toBeUndefined();
    // A job that ends before the resume point: a typed error, not a silent end.
    const short = a.createJob();
    a.emit(short, 'x');
    await a.flush();
    // b's reader waits once b's blocking read tails the job's stream: MONITOR shows that XREAD.
    const watcher = new Redis(REDIS_URL);
    const monitor = await watcher.monitor();
    try {
      let tailed = false;
      monitor.on('monitor', (_time: string, args: string[]) => {
        if (args[0]?.toLowerCase() === 'xread' && args.some((x) => x.endsWith(`:tokens:${short}`)))
          tailed = true;
      });
      const tooFar = collect(b.tokens$(short, { after: 5 }));
      await waitFor(() => tailed, 5000, "b's blocking read of the job's stream");
      a.updateState(short, 'completed');
      await tooFar.done;
      expect(tooFar.error).toBeInstanceOf(ResumeAheadError);
    } finally {
      monitor.disconnect();
      watcher.disconnect();
    }
    // Once it ended, a resume past its end is refused at once.
    await expect(b.checkReadable(short, { after: 3 })).rejects.toBeInstanceOf(ResumeAheadError);
  });

  test("a paused reader's hold keeps another process's ended job past its retention", async () => {
    const a = make({ retention: 300 });
    const b = make({ retention: 300 });
    await Promise.all([a.ready(), b.ready()]);
    const id = a.createJob();
    a.emit(id, 'x');
    a.updateState(id, 'completed');
    // A twin nobody holds, ended just after: once it is gone, the held job is past its retention too.
    const twin = a.createJob();
    a.emit(twin, 'x');
    a.updateState(twin, 'completed');
    await a.flush();
    const release = b.holdForReader(id);
    await waitFor(async () => (await b.findJob(twin)) === undefined, 10_000, "the twin's expiry");
    expect(await b.findJob(id)).toMatchObject({ state: 'completed' });
    release();
    await waitFor(async () => (await b.findJob(id)) === undefined, 10_000, 'expiry after the release');
  }, 20_000);
});
