import { JobRegistry, type JobProgress, type RegistryEvent } from '../../src/core/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('progress$ coalesces token counts per job per interval, and sends the exact count before the end', async () => {
  const r = new JobRegistry<number>({ progressInterval: 40 });
  const seen: Array<JobProgress | RegistryEvent> = [];
  r.progress$.subscribe((p) => seen.push(p));
  r.events$.subscribe((e) => seen.push(e));
  const a = r.createJob();
  const b = r.createJob();
  for (let i = 0; i < 1000; i++) r.emit(a, i);
  r.emit(b, 1);
  await sleep(60);
  for (let i = 0; i < 500; i++) r.emit(a, i);
  r.updateState(a, 'completed');
  await sleep(60);
  const progress = seen.filter((x): x is JobProgress => 'tokenCount' in x);
  // One per job per interval: 1000 tokens of a became one count, then the exact 1500 just before its end.
  expect(progress.map((p) => [p.jobId, p.tokenCount])).toEqual([
    [a, 1000],
    [b, 1],
    [a, 1500],
  ]);
  const end = seen.findIndex((x) => 'type' in x && x.type === 'stateChanged' && x.to === 'completed');
  const last = seen.findIndex((x) => 'tokenCount' in x && x.tokenCount === 1500);
  expect(last).toBeLessThan(end);
  await r.dispose();
});

test('progress$ costs nothing unwatched: no timer is left and no count is queued', async () => {
  const r = new JobRegistry<number>({ progressInterval: 10 });
  const id = r.createJob();
  for (let i = 0; i < 100; i++) r.emit(id, i);
  const seen: JobProgress[] = [];
  r.progress$.subscribe((p) => seen.push(p));
  await sleep(30);
  expect(seen).toEqual([]);
  r.emit(id, 100);
  await sleep(30);
  expect(seen.map((p) => p.tokenCount)).toEqual([101]);
  await r.dispose();
});
