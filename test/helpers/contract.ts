import { Observable, Subject } from 'rxjs';
import {
  JobCancelledError,
  JobFailedError,
  JobNotFoundError,
  ReplayExpiredError,
  type JobRegistry,
  type RegistryEvent,
} from '../../src/core/index.js';
import { collect, waitFor } from './collect.js';

/**
 * Two registries that share one store: `a` runs the jobs, `b` reads and controls them. In memory both are
 * the same registry; on Redis they are two registries, as two processes would be.
 */
export interface Pair {
  a: JobRegistry<string>;
  b: JobRegistry<string>;
  close(): Promise<void>;
}

/** The registry contract, run against every backend. */
export function registryContract(
  name: string,
  makePair: (options: { replayLimit?: number; retention?: number }) => Promise<Pair>,
): void {
  describe(`registry contract (${name})`, () => {
    let pair: Pair;
    afterEach(async () => {
      await pair?.close();
    });

    test('a job created on a is streamed from b: full replay, then live tail, in order, then complete', async () => {
      pair = await makePair({});
      const { a, b } = pair;
      const id = a.createJob();
      a.emit(id, 'one');
      a.emit(id, 'two');
      await a.flush();
      const r = collect(b.tokens$(id));
      await waitFor(() => r.values.length === 2, 5000, 'replay');
      a.emit(id, 'three');
      a.updateState(id, 'completed');
      await a.flush();
      await r.done;
      expect(r.values).toEqual([
        { seq: 0, token: 'one' },
        { seq: 1, token: 'two' },
        { seq: 2, token: 'three' },
      ]);
      expect(r.completed).toBe(true);
    });

    test('resume with after from b gives only later tokens', async () => {
      pair = await makePair({});
      const { a, b } = pair;
      const id = a.createJob();
      for (let i = 0; i < 5; i++) a.emit(id, `t${i}`);
      a.updateState(id, 'completed');
      await a.flush();
      const r = collect(b.tokens$(id, { after: 2 }));
      await r.done;
      expect(r.values.map((v) => v.seq)).toEqual([3, 4]);
    });

    test('failed and cancelled reach b as typed errors', async () => {
      pair = await makePair({});
      const { a, b } = pair;
      const f = a.createJob();
      const c = a.createJob();
      await a.flush();
      const rf = collect(b.tokens$(f));
      const rc = collect(b.tokens$(c));
      await waitFor(async () => (await b.findJob(c)) !== undefined, 5000, 'visible');
      a.emit(f, 'x');
      a.updateState(f, 'failed', 'disk full');
      a.updateState(c, 'cancelled', 'nope');
      await a.flush();
      await Promise.all([rf.done, rc.done]);
      expect(rf.error).toBeInstanceOf(JobFailedError);
      expect((rf.error as Error).message).toBe('disk full');
      expect(rf.values.map((v) => v.token)).toEqual(['x']);
      expect(rc.error).toBeInstanceOf(JobCancelledError);
    });

    test('cancel from b stops the producer on a and aborts its signal', async () => {
      pair = await makePair({});
      const { a, b } = pair;
      const id = a.createJob();
      let signal: AbortSignal | undefined;
      const source = new Subject<string>();
      a.executeAndStream(id, (_p, ctx) => ((signal = ctx.signal), source)).subscribe({
        error: () => undefined,
      });
      source.next('first');
      await a.flush();
      await expect(b.cancel(id, 'stop from b')).resolves.toBe(true);
      await waitFor(() => a.getJobState(id) === 'cancelled', 5000, 'cancel on a');
      expect(signal!.aborted).toBe(true);
      expect(source.observed).toBe(false);
      await expect(b.cancel(id)).resolves.toBe(false);
      await expect(b.cancel('job-unknown')).rejects.toBeInstanceOf(JobNotFoundError);
    });

    test('state$ and findJob from b follow a job run by a', async () => {
      pair = await makePair({});
      const { a, b } = pair;
      const id = a.createJob();
      await a.flush();
      const s = collect(b.state$(id));
      await waitFor(() => s.values.length === 1, 5000, 'first status');
      a.emit(id, 'x');
      a.updateState(id, 'completed');
      await a.flush();
      await s.done;
      expect(s.values.map((v) => v.state)).toEqual(['queued', 'running', 'completed']);
      const snap = await b.findJob(id);
      expect(snap).toMatchObject({ id, state: 'completed', tokenCount: 1 });
      expect(snap!.createdAt.isValid).toBe(true);
    });

    test("events$ and listJobs on b include a's jobs", async () => {
      pair = await makePair({});
      const { a, b } = pair;
      const seen: RegistryEvent[] = [];
      // Live once subscribed: b's backend reads every event from its start.
      const sub = b.events$.subscribe((e) => seen.push(e));
      const id = a.createJob();
      a.emit(id, 'x');
      a.updateState(id, 'completed');
      await a.flush();
      await waitFor(() => seen.filter((e) => e.jobId === id).length === 3, 5000, 'events');
      sub.unsubscribe();
      expect(
        seen.filter((e) => e.jobId === id).map((e) => (e.type === 'stateChanged' ? e.to : e.type)),
      ).toEqual(['created', 'running', 'completed']);
      expect((await b.listJobs()).map((j) => j.id)).toContain(id);
    });

    test('a resume point older than replayLimit keeps is ReplayExpiredError, never skipped', async () => {
      pair = await makePair({ replayLimit: 3 });
      const { a, b } = pair;
      const id = a.createJob();
      for (let i = 0; i < 10; i++) a.emit(id, `t${i}`);
      a.updateState(id, 'completed');
      await a.flush();
      await expect(b.checkReadable(id, { after: 2 })).rejects.toBeInstanceOf(ReplayExpiredError);
      const r = collect(b.tokens$(id, { after: 2 }));
      await r.done;
      expect(r.error).toBeInstanceOf(ReplayExpiredError);
      const ok = collect(b.tokens$(id, { after: 6 }));
      await ok.done;
      expect(ok.values.map((v) => v.seq)).toEqual([7, 8, 9]);
    });

    test('unknown ids from b: JobNotFoundError / undefined', async () => {
      pair = await makePair({});
      const { b } = pair;
      await expect(b.findJob('job-none')).resolves.toBeUndefined();
      const r = collect(b.tokens$('job-none'));
      const s = collect(b.state$('job-none'));
      await Promise.all([r.done, s.done]);
      expect(r.error).toBeInstanceOf(JobNotFoundError);
      expect(s.error).toBeInstanceOf(JobNotFoundError);
    });

    test("dispose() on b completes b's streams of a's job", async () => {
      pair = await makePair({});
      const { a, b } = pair;
      const id = a.createJob();
      a.emit(id, 'x');
      await a.flush();
      const t = collect(b.tokens$(id));
      const s = collect(b.state$(id));
      await waitFor(() => t.values.length === 1 && s.values.length === 1, 5000, 'streams open');
      await b.dispose();
      await Promise.all([t.done, s.done]);
      expect(t.completed).toBe(true);
      expect(s.completed).toBe(true);
      expect(b.isDisposed).toBe(true);
    });

    test('an executor that never ends is still stopped by cancel from b', async () => {
      pair = await makePair({});
      const { a, b } = pair;
      const id = a.createJob();
      let stopped = false;
      a.executeAndStream(id, () => new Observable<string>(() => () => (stopped = true))).subscribe({
        error: () => undefined,
      });
      await a.flush();
      await b.cancel(id);
      await waitFor(() => stopped, 5000, 'producer stopped');
    });
  });
}
