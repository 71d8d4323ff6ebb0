/**
 * The registry's time in virtual time (`scheduler` option): claim, retention, abandon and drain fire
 * exactly when their time comes, not a millisecond before, however fast the machine.
 */
import { JobRegistry, type RegistryEvent } from '../../src/core/index.js';
import { virtualClock } from '../helpers/clock.js';
import { collect } from '../helpers/collect.js';

test('claimTimeout cancels a queued job nobody claimed, exactly at its time', async () => {
  const clock = virtualClock();
  const r = new JobRegistry<string>({ claimTimeout: 1000, scheduler: clock.scheduler });
  const id = r.createJob();
  const claimed = r.createJob();
  r.tokens$(claimed).subscribe();
  clock.advance(999);
  expect(r.getJobState(id)).toBe('queued');
  clock.advance(1);
  expect(r.getJob(id)).toMatchObject({ state: 'cancelled', error: expect.stringContaining('claimTimeout') });
  expect(r.getJob(id)!.updatedAt.toMillis()).toBe(1000);
  expect(r.getJobState(claimed)).toBe('queued');
  await r.dispose();
});

test('retention removes a terminal job exactly at its time, and stamps the removal with it', async () => {
  const clock = virtualClock();
  const r = new JobRegistry<string>({ retention: { seconds: 5 }, scheduler: clock.scheduler });
  const events: RegistryEvent[] = [];
  r.events$.subscribe((e) => events.push(e));
  const id = r.createJob();
  clock.advance(100);
  r.emit(id, 'a');
  r.updateState(id, 'completed');
  clock.advance(4999);
  expect(r.hasJob(id)).toBe(true);
  clock.advance(1);
  expect(r.hasJob(id)).toBe(false);
  expect(events.map((e) => [e.type, e.at.toMillis()])).toEqual([
    ['created', 0],
    ['stateChanged', 100],
    ['stateChanged', 100],
    ['removed', 5100],
  ]);
  expect(r.getJob(id)).toBeUndefined();
  await r.dispose();
});

test('abandonTimeout cancels a live job whose readers all left and none came back', async () => {
  const clock = virtualClock();
  const r = new JobRegistry<string>({ abandonTimeout: 2000, scheduler: clock.scheduler });
  const id = r.createJob();
  r.emit(id, 'a');
  const first = r.tokens$(id).subscribe();
  clock.advance(10_000);
  expect(r.getJobState(id)).toBe('running');
  first.unsubscribe();
  clock.advance(1500);
  // A reader came back in time: the countdown starts again when it leaves.
  const second = r.tokens$(id).subscribe();
  clock.advance(1000);
  second.unsubscribe();
  clock.advance(1999);
  expect(r.getJobState(id)).toBe('running');
  clock.advance(1);
  expect(r.getJob(id)).toMatchObject({
    state: 'cancelled',
    error: expect.stringContaining('abandonTimeout'),
  });
  await r.dispose();
});

test('drain waits for live jobs on the clock, then cancels those still live; one that ends in time counts as finished', async () => {
  const clock = virtualClock();
  const r = new JobRegistry<string>({ scheduler: clock.scheduler });
  const quick = r.createJob();
  const slow = r.createJob();
  r.emit(quick, 'a');
  r.emit(slow, 'b');
  const ended = collect(r.tokens$(slow));
  let result: { finished: number; cancelled: number } | undefined;
  const drained = r.drain(3000).then((x) => (result = x));
  clock.advance(1000);
  r.updateState(quick, 'completed');
  clock.advance(1999);
  await Promise.resolve();
  expect(result).toBeUndefined();
  expect(r.getJobState(slow)).toBe('running');
  clock.advance(1);
  await drained;
  expect(result).toEqual({ finished: 1, cancelled: 1 });
  await ended.done;
  expect(r.getJobState(slow)).toBe('cancelled');
  await r.dispose();
});

test('drain resolves as soon as the last live job ends, without waiting for its time', async () => {
  const clock = virtualClock();
  const r = new JobRegistry<string>({ scheduler: clock.scheduler });
  const id = r.createJob();
  r.emit(id, 'a');
  const drained = r.drain({ hours: 1 });
  r.updateState(id, 'completed');
  await expect(drained).resolves.toEqual({ finished: 1, cancelled: 0 });
  expect(clock.now()).toBe(0);
  await r.dispose();
});

test('a malformed scheduler is refused with a clear error', () => {
  expect(() => new JobRegistry({ scheduler: {} as never })).toThrow(
    /scheduler must be an RxJS SchedulerLike/,
  );
});

test("drain with no time limit waits for the jobs' ends on the system clock, and cancels nothing", async () => {
  const r = new JobRegistry<string>();
  const id = r.createJob();
  r.emit(id, 'a');
  let result: { finished: number; cancelled: number } | undefined;
  const drained = r.drain(Infinity).then((x) => (result = x));
  // Past a timer turn (a delay past setTimeout's range would fire at once): still waiting.
  await new Promise((resolve) => setTimeout(resolve, 5));
  expect(result).toBeUndefined();
  expect(r.getJobState(id)).toBe('running');
  r.updateState(id, 'completed');
  await drained;
  expect(result).toEqual({ finished: 1, cancelled: 0 });
  await r.dispose();
});
