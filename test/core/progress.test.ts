import { JobRegistry, type JobProgress, type RegistryEvent } from '../../src/core/index.js';
import { virtualClock } from '../helpers/clock.js';

test('progress$ coalesces token counts per job per interval, and sends the exact count before the end', async () => {
  const clock = virtualClock();
  const r = new JobRegistry<number>({ progressInterval: 40, scheduler: clock.scheduler });
  const seen: Array<JobProgress | RegistryEvent> = [];
  r.progress$.subscribe((p) => seen.push(p));
  r.events$.subscribe((e) => seen.push(e));
  const a = r.createJob();
  const b = r.createJob();
  for (let i = 0; i < 1000; i++) r.emit(a, i);
  r.emit(b, 1);
  clock.advance(39);
  expect(seen.filter((x) => 'tokenCount' in x)).toEqual([]);
  clock.advance(1);
  for (let i = 0; i < 500; i++) r.emit(a, i);
  r.updateState(a, 'completed');
  clock.advance(40);
  const progress = seen.filter((x): x is JobProgress => 'tokenCount' in x);
  // One per job per interval: 1000 tokens of a became one count, then the exact 1500 just before its end.
  expect(progress.map((p) => [p.jobId, p.tokenCount, p.at.toMillis()])).toEqual([
    [a, 1000, 40],
    [b, 1, 40],
    [a, 1500, 40],
  ]);
  const end = seen.findIndex((x) => 'type' in x && x.type === 'stateChanged' && x.to === 'completed');
  const last = seen.findIndex((x) => 'tokenCount' in x && x.tokenCount === 1500);
  expect(last).toBeLessThan(end);
  await r.dispose();
});

test('progress$ costs nothing unwatched: no timer is left and no count is queued', async () => {
  const clock = virtualClock();
  const r = new JobRegistry<number>({ progressInterval: 10, scheduler: clock.scheduler });
  const id = r.createJob();
  for (let i = 0; i < 100; i++) r.emit(id, i);
  // Nothing watched: no timer was armed.
  expect(clock.scheduler.actions).toHaveLength(0);
  const seen: JobProgress[] = [];
  r.progress$.subscribe((p) => seen.push(p));
  clock.advance(30);
  expect(seen).toEqual([]);
  r.emit(id, 100);
  clock.advance(10);
  expect(seen.map((p) => p.tokenCount)).toEqual([101]);
  await r.dispose();
});
