import { Duration } from 'luxon';
import { Observable, Subject, interval, map, of, throwError } from 'rxjs';
import {
  InvalidArgumentError,
  InvalidStateError,
  InvalidTransitionError,
  JobBusyError,
  JobCancelledError,
  JobClosedError,
  JobFailedError,
  JobNotFoundError,
  JobRegistry,
  JobRegistryError,
  RegistryDisposedError,
  ReplayExpiredError,
  type JobState,
  type RegistryEvent,
} from '../../src/core/index.js';
import { virtualClock } from '../helpers/clock.js';
import { collect, waitFor } from '../helpers/collect.js';

let registry: JobRegistry<string, { prompt: string }>;
beforeEach(() => {
  registry = new JobRegistry();
});
afterEach(async () => {
  await registry.dispose();
});

const UUID = /^job-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('create, look up, update, remove', () => {
  test('createJob gives job-<uuid v4>, queued, counted and listed', () => {
    const a = registry.createJob();
    const b = registry.createJob({ payload: { prompt: 'hi' } });
    expect(a).toMatch(UUID);
    expect(b).not.toBe(a);
    expect(registry.hasJob(a)).toBe(true);
    expect(registry.getJobState(a)).toBe('queued');
    expect(registry.jobCount()).toBe(2);
    expect(registry.jobIds()).toEqual([a, b]);
    const snap = registry.getJob(a)!;
    expect(snap.id).toBe(a);
    expect(snap.state).toBe('queued');
    expect(snap.tokenCount).toBe(0);
    expect(snap.createdAt.zoneName).toBe('UTC');
    expect(Math.abs(snap.createdAt.toMillis() - Date.now())).toBeLessThan(1000);
  });

  test('unknown ids: false / undefined from lookups, JobNotFoundError from actions', async () => {
    expect(registry.hasJob('job-nope')).toBe(false);
    expect(registry.getJob('job-nope')).toBeUndefined();
    expect(registry.getJobState('job-nope')).toBeUndefined();
    expect(registry.removeJob('job-nope')).toBeUndefined();
    expect(() => registry.emit('job-nope', 'x')).toThrow(JobNotFoundError);
    expect(() => registry.updateState('job-nope', 'running')).toThrow(JobNotFoundError);
    expect(() => registry.setPayload('job-nope', { prompt: '' })).toThrow(JobNotFoundError);
    expect(() => registry.takePayload('job-nope')).toThrow(JobNotFoundError);
    expect(() => registry.getTokenSender('job-nope')).toThrow(JobNotFoundError);
    expect(() => registry.setTokenSource('job-nope', of('x'))).toThrow(JobNotFoundError);
    await expect(registry.cancel('job-nope')).rejects.toBeInstanceOf(JobNotFoundError);
    await expect(registry.findJob('job-nope')).resolves.toBeUndefined();
    const t = collect(registry.tokens$('job-nope'));
    const s = collect(registry.state$('job-nope'));
    await Promise.all([t.done, s.done]);
    expect(t.error).toBeInstanceOf(JobNotFoundError);
    expect((t.error as JobRegistryError).code).toBe('JOB_NOT_FOUND');
    expect((t.error as Error).message).toContain('retention is 10 min');
    expect(s.error).toBeInstanceOf(JobNotFoundError);
    expect(registry.jobCount()).toBe(0);
  });

  test('walks through the states and validates transitions', () => {
    const id = registry.createJob();
    registry.updateState(id, 'queued'); // same state: no-op
    registry.updateState(id, 'running');
    expect(() => registry.updateState(id, 'queued')).toThrow(InvalidTransitionError);
    registry.updateState(id, 'running');
    registry.updateState(id, 'completed');
    expect(registry.getJobState(id)).toBe('completed');
    registry.updateState(id, 'completed');
    for (const to of ['queued', 'running', 'failed', 'cancelled'] as JobState[]) {
      const e = (() => {
        try {
          registry.updateState(id, to);
        } catch (err) {
          return err as InvalidTransitionError;
        }
        return undefined;
      })();
      expect(e).toBeInstanceOf(InvalidTransitionError);
      expect(e!.code).toBe('INVALID_TRANSITION');
      expect(e!.from).toBe('completed');
    }
    for (const to of ['running', 'completed', 'failed', 'cancelled'] as JobState[]) {
      const q = registry.createJob();
      registry.updateState(q, to);
      expect(registry.getJobState(q)).toBe(to);
    }
  });

  test('a state that is not a JobState, from untyped code, is refused and changes nothing', () => {
    const id = registry.createJob();
    for (const bad of ['done', '', 'RUNNING', 42, null, undefined, {}]) {
      expect(() => registry.updateState(id, bad as unknown as JobState)).toThrow(InvalidStateError);
    }
    expect(registry.getJobState(id)).toBe('queued');
  });

  test('failed and cancelled keep their error; snapshot and status carry it', async () => {
    const a = registry.createJob();
    registry.updateState(a, 'failed', 'model crashed');
    expect(registry.getJob(a)!.error).toBe('model crashed');
    const s = collect(registry.state$(a));
    await s.done;
    expect(s.values.map((v) => [v.state, v.error])).toEqual([['failed', 'model crashed']]);
  });

  test('remove twice is idempotent; removing a live job cancels it first', () => {
    const id = registry.createJob();
    registry.emit(id, 'a');
    const t = collect(registry.tokens$(id));
    const snap = registry.removeJob(id)!;
    expect(snap.state).toBe('cancelled');
    expect(snap.tokenCount).toBe(1);
    expect(t.error).toBeInstanceOf(JobCancelledError);
    expect(registry.removeJob(id)).toBeUndefined();
    expect(registry.hasJob(id)).toBe(false);
  });

  test('concurrent removal of 10 jobs', async () => {
    const ids = Array.from({ length: 10 }, () => registry.createJob());
    await Promise.all(ids.map(async (id) => registry.removeJob(id)));
    expect(registry.jobCount()).toBe(0);
  });

  test('100 jobs x 10 tokens, then removal of all', async () => {
    const ids = Array.from({ length: 100 }, () => registry.createJob());
    const readers = ids.map((id) => collect(registry.tokens$(id)));
    for (let i = 0; i < 10; i++) for (const id of ids) registry.emit(id, `${id}:${i}`);
    ids.forEach((id) => registry.updateState(id, 'completed'));
    await Promise.all(readers.map((r) => r.done));
    readers.forEach((r, k) => {
      expect(r.completed).toBe(true);
      expect(r.values.map((v) => v.token)).toEqual(Array.from({ length: 10 }, (_, i) => `${ids[k]}:${i}`));
    });
    for (const id of ids) expect(registry.removeJob(id)!.tokenCount).toBe(10);
    expect(registry.jobCount()).toBe(0);
  });

  test('100 rapid create/remove cycles leave nothing behind', () => {
    for (let i = 0; i < 100; i++) {
      const id = registry.createJob({ payload: { prompt: String(i) } });
      registry.emit(id, 'x');
      expect(registry.removeJob(id)!.state).toBe('cancelled');
    }
    expect(registry.jobCount()).toBe(0);
    expect(registry.jobIds()).toEqual([]);
  });
});

describe('tokens', () => {
  test('emit returns seq 0,1,2 and moves queued to running; emit after the end throws JobClosedError', () => {
    const id = registry.createJob();
    expect(registry.emit(id, 'a')).toBe(0);
    expect(registry.getJobState(id)).toBe('running');
    expect(registry.emit(id, 'b')).toBe(1);
    registry.updateState(id, 'completed');
    expect(() => registry.emit(id, 'c')).toThrow(JobClosedError);
    expect(registry.getJob(id)!.tokenCount).toBe(2);
  });

  test('replay then live, after=N resumes, late reader of a finished job gets all then completes', async () => {
    const id = registry.createJob();
    registry.emit(id, 'a');
    registry.emit(id, 'b');
    const all = collect(registry.tokens$(id));
    const resumed = collect(registry.tokens$(id, { after: 0 }));
    registry.emit(id, 'c');
    registry.updateState(id, 'completed');
    await Promise.all([all.done, resumed.done]);
    expect(all.values).toEqual([
      { seq: 0, token: 'a' },
      { seq: 1, token: 'b' },
      { seq: 2, token: 'c' },
    ]);
    expect(resumed.values.map((v) => v.seq)).toEqual([1, 2]);
    const late = collect(registry.tokens$(id, { after: 1 }));
    await late.done;
    expect(late.values.map((v) => v.token)).toEqual(['c']);
    expect(late.completed).toBe(true);
  });

  test('failed and cancelled jobs error their readers with typed errors', async () => {
    const f = registry.createJob();
    const c = registry.createJob();
    const rf = collect(registry.tokens$(f));
    const rc = collect(registry.tokens$(c));
    registry.emit(f, 'x');
    registry.updateState(f, 'failed', 'out of memory');
    await expect(registry.cancel(c, 'user pressed stop')).resolves.toBe(true);
    await expect(registry.cancel(c)).resolves.toBe(false);
    expect(rf.values).toHaveLength(1);
    expect(rf.error).toBeInstanceOf(JobFailedError);
    expect((rf.error as Error).message).toBe('out of memory');
    expect(rc.error).toBeInstanceOf(JobCancelledError);
    expect((rc.error as Error).message).toBe('user pressed stop');
  });

  test('replayLimit keeps the last N; an older resume point is ReplayExpiredError', async () => {
    const r = new JobRegistry<number>({ replayLimit: 3 });
    const id = r.createJob();
    for (let i = 0; i < 10; i++) r.emit(id, i);
    const kept = collect(r.tokens$(id));
    expect(kept.values.map((v) => v.seq)).toEqual([7, 8, 9]);
    const ok = collect(r.tokens$(id, { after: 6 }));
    expect(ok.values.map((v) => v.token)).toEqual([7, 8, 9]);
    const expired = collect(r.tokens$(id, { after: 5 }));
    expect(expired.error).toBeInstanceOf(ReplayExpiredError);
    expect((expired.error as ReplayExpiredError).firstKept).toBe(7);
    r.emit(id, 10);
    expect(kept.values.map((v) => v.seq)).toEqual([7, 8, 9, 10]);
    await r.dispose();
  });

  test('a bad after is refused at once with InvalidArgumentError', () => {
    const id = registry.createJob();
    for (const bad of [-1, 1.5, NaN, Infinity, '3', null]) {
      expect(() => registry.tokens$(id, { after: bad as unknown as number })).toThrow(InvalidArgumentError);
    }
  });

  test('a reader that emits from its own callback does not reorder other readers', () => {
    const id = registry.createJob();
    const seen: number[] = [];
    registry.tokens$(id).subscribe(({ seq }) => {
      if (seq < 3) registry.emit(id, `from-reader-${seq}`);
    });
    registry.tokens$(id).subscribe(({ seq }) => seen.push(seq));
    registry.emit(id, 'start');
    expect(seen).toEqual([0, 1, 2, 3]);
  });

  test('a reader that completes the job from its callback: others still get that token, then complete', () => {
    const id = registry.createJob();
    registry.tokens$(id).subscribe(() => registry.updateState(id, 'completed'));
    const other = collect(registry.tokens$(id));
    registry.emit(id, 'only');
    expect(other.values.map((v) => v.token)).toEqual(['only']);
    expect(other.completed).toBe(true);
  });

  test('unsubscribing a reader detaches it; the job goes on for the next reader', () => {
    const id = registry.createJob();
    const first = collect(registry.tokens$(id));
    registry.emit(id, 'a');
    first.unsubscribe();
    registry.emit(id, 'b');
    expect(first.values).toHaveLength(1);
    const again = collect(registry.tokens$(id, { after: 0 }));
    expect(again.values.map((v) => v.token)).toEqual(['b']);
    expect(registry.getJobState(id)).toBe('running');
  });
});

describe('producers', () => {
  test('getTokenSender: next emits, complete completes, next after the end is dropped', async () => {
    const id = registry.createJob();
    const sender = registry.getTokenSender(id);
    const r = collect(registry.tokens$(id));
    sender.next('a');
    sender.complete();
    sender.next('dropped');
    await r.done;
    expect(r.values.map((v) => v.token)).toEqual(['a']);
    expect(registry.getJobState(id)).toBe('completed');
    const f = registry.createJob();
    registry.getTokenSender(f).error(new Error('boom'));
    expect(registry.getJob(f)!.error).toBe('boom');
  });

  test('setTokenSource pipes a producer; cancel unsubscribes it; a second source is JobBusyError', async () => {
    const id = registry.createJob();
    let torn = false;
    const source = new Observable<string>((sub) => {
      sub.next('a');
      return () => (torn = true);
    });
    registry.setTokenSource(id, source);
    expect(() => registry.setTokenSource(id, of('b'))).toThrow(JobBusyError);
    expect(registry.getJob(id)!.tokenCount).toBe(1);
    await registry.cancel(id);
    expect(torn).toBe(true);
    const done = registry.createJob();
    registry.setTokenSource(done, of('x', 'y'));
    expect(registry.getJob(done)).toMatchObject({ state: 'completed', tokenCount: 2 });
    const failed = registry.createJob();
    registry.setTokenSource(
      failed,
      throwError(() => new Error('source broke')),
    );
    expect(registry.getJob(failed)).toMatchObject({ state: 'failed', error: 'source broke' });
    expect(() => registry.setTokenSource(done, of('z'))).toThrow(JobClosedError);
  });

  test('a producer still active after removal is unsubscribed and its tokens dropped', () => {
    const id = registry.createJob();
    const source = new Subject<string>();
    registry.setTokenSource(id, source);
    source.next('a');
    registry.removeJob(id);
    expect(source.observed).toBe(false);
    expect(() => source.next('b')).not.toThrow();
    expect(registry.hasJob(id)).toBe(false);
  });

  test('payload: set, take once, taken payload cannot be taken again', () => {
    const id = registry.createJob({ payload: { prompt: 'one' } });
    expect(registry.takePayload(id)).toEqual({ prompt: 'one' });
    expect(registry.takePayload(id)).toBeUndefined();
    registry.setPayload(id, { prompt: 'two' });
    expect(registry.takePayload(id)).toEqual({ prompt: 'two' });
    expect(registry.takePayload(id)).toBeUndefined();
  });

  test('partial state: payload only, producer only, both, neither', async () => {
    const payloadOnly = registry.createJob({ payload: { prompt: 'p' } });
    const producerOnly = registry.createJob();
    registry.setTokenSource(producerOnly, of('t'));
    const both = registry.createJob({ payload: { prompt: 'b' } });
    registry.setTokenSource(both, of('u'));
    const neither = registry.createJob();
    expect(registry.getJobState(payloadOnly)).toBe('queued');
    expect(registry.getJobState(producerOnly)).toBe('completed');
    expect(registry.takePayload(both)).toBeUndefined(); // a finished job keeps no payload
    expect(registry.getJobState(neither)).toBe('queued');
    for (const id of [payloadOnly, producerOnly, both, neither]) registry.removeJob(id);
    expect(registry.jobCount()).toBe(0);
  });

  test('mixed payload and producer jobs run side by side', async () => {
    const ids = Array.from({ length: 20 }, (_, i) =>
      i % 2 === 0 ? registry.createJob({ payload: { prompt: `w${i} v${i}` } }) : registry.createJob(),
    );
    const streams = ids.map((id, i) =>
      i % 2 === 0
        ? registry.executeAndStream(id, (p) => of(...p!.prompt.split(' ')))
        : (registry.setTokenSource(id, of(`s${i}`)), registry.tokens$(id)),
    );
    const results = streams.map((s) => collect(s));
    await Promise.all(results.map((r) => r.done));
    results.forEach((r, i) => {
      expect(r.completed).toBe(true);
      expect(r.values.map((v) => v.token)).toEqual(i % 2 === 0 ? [`w${i}`, `v${i}`] : [`s${i}`]);
    });
  });
});

describe('executeAndStream', () => {
  test('starts once with the payload; later calls join', async () => {
    const id = registry.createJob({ payload: { prompt: 'a b c' } });
    let starts = 0;
    const exec = (p: { prompt: string } | undefined) => {
      starts++;
      return interval(1).pipe(
        map((i) => p!.prompt.split(' ')[i]!),
        (s) =>
          new Observable<string>((sub) =>
            s.subscribe({ next: (v) => (v === 'c' ? (sub.next(v), sub.complete()) : sub.next(v)) }),
          ),
      );
    };
    const first = collect(registry.executeAndStream(id, exec));
    const second = collect(registry.executeAndStream(id, exec));
    await Promise.all([first.done, second.done]);
    expect(starts).toBe(1);
    expect(first.values.map((v) => v.token)).toEqual(['a', 'b', 'c']);
    expect(second.values).toEqual(first.values);
  });

  test('an executor that throws synchronously fails the job, no crash', async () => {
    const id = registry.createJob();
    const r = collect(
      registry.executeAndStream(id, () => {
        throw new Error('bad model name');
      }),
    );
    await r.done;
    expect(r.error).toBeInstanceOf(JobFailedError);
    expect((r.error as Error).message).toBe('bad model name');
    expect(registry.getJobState(id)).toBe('failed');
  });

  test('an executor that returns a rejected promise fails the job', async () => {
    const id = registry.createJob();
    const r = collect(registry.executeAndStream(id, async () => Promise.reject(new Error('rate limited'))));
    await r.done;
    expect(registry.getJob(id)).toMatchObject({ state: 'failed', error: 'rate limited' });
  });

  test('an executor that returns something not streamable fails the job', async () => {
    const id = registry.createJob();
    const r = collect(registry.executeAndStream(id, () => 42 as unknown as string[]));
    await r.done;
    expect(r.error).toBeInstanceOf(JobFailedError);
  });

  test('an executor that never ends is stopped by cancel: signal aborts, source unsubscribed', async () => {
    const id = registry.createJob();
    let signal: AbortSignal | undefined;
    let unsubscribed = false;
    const r = collect(
      registry.executeAndStream(id, (_p, ctx) => {
        signal = ctx.signal;
        expect(ctx.jobId).toBe(id);
        return new Observable<string>(() => () => (unsubscribed = true));
      }),
    );
    expect(signal!.aborted).toBe(false);
    await expect(registry.cancel(id, 'stop')).resolves.toBe(true);
    expect(signal!.aborted).toBe(true);
    expect(unsubscribed).toBe(true);
    expect(r.error).toBeInstanceOf(JobCancelledError);
  });

  test('removal aborts a running executor too', () => {
    const id = registry.createJob();
    let signal: AbortSignal | undefined;
    registry.executeAndStream(id, (_p, ctx) => ((signal = ctx.signal), new Observable<string>()));
    registry.removeJob(id);
    expect(signal!.aborted).toBe(true);
  });
});

describe('events$ and state$', () => {
  test('events$ publishes created, stateChanged and removed in order, with UTC DateTimes', () => {
    const events: RegistryEvent[] = [];
    registry.events$.subscribe((e) => events.push(e));
    const id = registry.createJob();
    registry.emit(id, 'a');
    registry.updateState(id, 'failed', 'oops');
    registry.removeJob(id);
    expect(events.map((e) => e.type)).toEqual(['created', 'stateChanged', 'stateChanged', 'removed']);
    expect(events[1]).toMatchObject({ from: 'queued', to: 'running', jobId: id });
    expect(events[2]).toMatchObject({ from: 'running', to: 'failed', error: 'oops' });
    expect(events.every((e) => e.at.zoneName === 'UTC' && e.at.isValid)).toBe(true);
  });

  test('events caused from inside an events$ subscriber stay in order for every subscriber', () => {
    const a: string[] = [];
    const b: string[] = [];
    registry.events$.subscribe((e) => {
      a.push(e.type === 'stateChanged' ? e.to : e.type);
      if (e.type === 'created') registry.updateState(e.jobId, 'running');
    });
    registry.events$.subscribe((e) => b.push(e.type === 'stateChanged' ? e.to : e.type));
    registry.createJob();
    expect(a).toEqual(['created', 'running']);
    expect(b).toEqual(['created', 'running']);
  });

  test('state$ gives the current status, each change, and completes after a terminal one', async () => {
    const id = registry.createJob();
    const s = collect(registry.state$(id));
    registry.emit(id, 'x');
    registry.updateState(id, 'completed');
    await s.done;
    expect(s.values.map((v) => v.state)).toEqual(['queued', 'running', 'completed']);
    expect(s.completed).toBe(true);
  });

  test('state$ completes on removal', async () => {
    const id = registry.createJob();
    const s = collect(registry.state$(id));
    registry.removeJob(id);
    await s.done;
    expect(s.values.map((v) => v.state)).toEqual(['queued', 'cancelled']);
  });

  test('findJob and listJobs', async () => {
    const a = registry.createJob();
    const b = registry.createJob();
    expect((await registry.findJob(a))!.id).toBe(a);
    expect((await registry.listJobs()).map((s) => s.id)).toEqual([a, b]);
  });
});

describe('time: retention and claimTimeout', () => {
  test('retention removes a terminal job by itself (cleanup on normal completion)', async () => {
    const r = new JobRegistry<string>({ retention: 30 });
    const removed: string[] = [];
    r.events$.subscribe((e) => e.type === 'removed' && removed.push(e.jobId));
    const id = r.createJob();
    r.emit(id, 'a');
    r.updateState(id, 'completed');
    expect(r.hasJob(id)).toBe(true);
    await waitFor(() => !r.hasJob(id), 2000, 'retention');
    expect(removed).toEqual([id]);
    await r.dispose();
  });

  test('retention accepts a luxon Duration and a duration object; cleanup on error', async () => {
    const a = new JobRegistry<string>({ retention: Duration.fromMillis(20) });
    const b = new JobRegistry<string>({ retention: { milliseconds: 20 } });
    const ia = a.createJob();
    const ib = b.createJob();
    a.updateState(ia, 'failed', 'x');
    b.getTokenSender(ib).error(new Error('y'));
    await waitFor(() => !a.hasJob(ia) && !b.hasJob(ib), 2000, 'retention');
    await Promise.all([a.dispose(), b.dispose()]);
  });

  test('bad durations are refused with InvalidArgumentError', () => {
    expect(() => new JobRegistry({ retention: -1 })).toThrow(InvalidArgumentError);
    expect(() => new JobRegistry({ retention: { fortnights: 2 } as never })).toThrow(InvalidArgumentError);
    expect(() => new JobRegistry({ claimTimeout: 'soon' as never })).toThrow(InvalidArgumentError);
    expect(() => new JobRegistry({ replayLimit: -3 })).toThrow(InvalidArgumentError);
    expect(() => new JobRegistry({ idPrefix: 'a b*' })).toThrow(InvalidArgumentError);
  });

  test('claimTimeout cancels a job nobody reads (cleanup on timeout), then retention removes it', async () => {
    const r = new JobRegistry<string>({ claimTimeout: 20, retention: 20 });
    const unread = r.createJob({ payload: 'work' as never });
    const read = r.createJob();
    const reader = collect(r.tokens$(read));
    await waitFor(() => r.getJobState(unread) === 'cancelled', 2000, 'claim timeout');
    expect(r.getJob(unread)!.error).toMatch(/claimTimeout/);
    expect(r.getJobState(read)).toBe('queued');
    await waitFor(() => !r.hasJob(unread), 2000, 'retention');
    reader.unsubscribe();
    await r.dispose();
  });

  test('per-job claimTimeout overrides the registry default', async () => {
    const r = new JobRegistry<string>();
    const id = r.createJob({ claimTimeout: { milliseconds: 10 } });
    const other = r.createJob();
    await waitFor(() => r.getJobState(id) === 'cancelled', 2000, 'claim timeout');
    expect(r.getJobState(other)).toBe('queued');
    await r.dispose();
  });

  test('abandonTimeout cancels a job whose readers all left and did not come back', async () => {
    const clock = virtualClock();
    const r = new JobRegistry<string>({ abandonTimeout: 30, scheduler: clock.scheduler });
    const gone = r.createJob();
    const back = r.createJob();
    const unread = r.createJob();
    r.tokens$(gone).subscribe().unsubscribe();
    r.tokens$(back).subscribe().unsubscribe();
    const again = r.tokens$(back).subscribe({ error: () => undefined });
    clock.advance(30);
    expect(r.getJobState(gone)).toBe('cancelled');
    expect(r.getJob(gone)!.error).toMatch(/abandonTimeout/);
    clock.advance(60_000);
    expect(r.getJobState(back)).toBe('queued');
    expect(r.getJobState(unread)).toBe('queued'); // never read: that is claimTimeout's case
    again.unsubscribe();
    await r.dispose();
  });

  test('timers never fire for a removed job', async () => {
    const clock = virtualClock();
    const r = new JobRegistry<string>({ retention: 10, claimTimeout: 10, scheduler: clock.scheduler });
    const events: RegistryEvent[] = [];
    r.events$.subscribe((e) => events.push(e));
    const a = r.createJob();
    const b = r.createJob();
    r.updateState(b, 'completed');
    r.removeJob(a);
    r.removeJob(b);
    const before = events.length;
    clock.advance(60_000);
    expect(events.length).toBe(before);
    expect(clock.scheduler.actions.filter((a) => !a.closed)).toHaveLength(0);
    await r.dispose();
  });
});

describe('dispose', () => {
  test('completes every stream, cancels live jobs, and refuses later calls with RegistryDisposedError', async () => {
    const r = new JobRegistry<string>({ claimTimeout: 60_000 });
    const id = r.createJob();
    let signal: AbortSignal | undefined;
    const t = collect(r.executeAndStream(id, (_p, ctx) => ((signal = ctx.signal), new Observable<string>())));
    const states: string[] = [];
    r.events$.subscribe((e) => e.type === 'stateChanged' && states.push(e.to));
    const s = collect(r.state$(id));
    const ev = collect(r.events$);
    await r.dispose();
    await r.dispose();
    await Promise.all([t.done, s.done, ev.done]);
    expect(t.completed).toBe(true);
    expect(signal!.aborted).toBe(true);
    expect(states).toEqual(['cancelled']);
    expect(s.completed).toBe(true);
    expect(ev.completed).toBe(true);
    expect(() => r.createJob()).toThrow(RegistryDisposedError);
    expect(() => r.emit(id, 'x')).toThrow(RegistryDisposedError);
    expect(() => r.updateState(id, 'running')).toThrow(RegistryDisposedError);
    for (const lookup of [
      () => r.hasJob(id),
      () => r.getJob(id),
      () => r.getJobState(id),
      () => r.jobIds(),
      () => r.jobCount(),
    ])
      expect(lookup).toThrow(RegistryDisposedError);
    await expect(r.cancel(id)).rejects.toBeInstanceOf(RegistryDisposedError);
    await expect(r.listJobs()).rejects.toBeInstanceOf(RegistryDisposedError);
    const late = collect(r.tokens$(id));
    expect(late.error).toBeInstanceOf(RegistryDisposedError);
  });
});

test('with concurrency, the end that frees a slot is published before the start it makes room for', async () => {
  const { Subject } = await import('rxjs');
  const r = new JobRegistry<string>({ concurrency: 1 });
  const seen: string[] = [];
  r.events$.subscribe((e) => {
    if (e.type === 'stateChanged') seen.push(`${e.jobId === a ? 'a' : 'b'}:${e.to}`);
  });
  const source = new Subject<string>();
  const a = r.createJob();
  r.executeAndStream(a, () => source);
  const b = r.createJob();
  r.executeAndStream(b, () => ['x']);
  expect(r.getJobState(b)).toBe('queued');
  source.error(new Error('boom'));
  expect(seen).toEqual(['a:running', 'a:failed', 'b:running', 'b:completed']);
  await r.dispose();
});
