/**
 * Memory: heap per idle job with 100k jobs held (vs a bare BehaviorSubject + ReplaySubject pair with a
 * uuid key in a Map), and the leak check: 100k jobs x 100 tokens created and removed, then the heap is
 * compared with where it started. Run with --expose-gc.
 */
import { BehaviorSubject, ReplaySubject } from 'rxjs';
import { v4 as uuidv4 } from 'uuid';
import { JobRegistry } from '../../src/core/index.js';
import { QUICK, figure, heapUsed, ratio, report, type Figure, type Ratio } from '../lib.js';

const JOBS = QUICK ? 20_000 : 100_000;
const REPS = QUICK ? 2 : 5;
const figures: Figure[] = [];
const ratios: Ratio[] = [];

function perIdleJob(): number {
  const before = heapUsed();
  const r = new JobRegistry<string>();
  for (let i = 0; i < JOBS; i++) r.createJob();
  const after = heapUsed();
  const per = (after - before) / JOBS;
  if (r.jobCount() !== JOBS) throw new Error('lost jobs');
  void r.dispose();
  return per;
}

function perBarePair(): number {
  const before = heapUsed();
  const m = new Map<string, { s: BehaviorSubject<string>; t: ReplaySubject<string> }>();
  for (let i = 0; i < JOBS; i++)
    m.set('job-' + uuidv4(), { s: new BehaviorSubject('queued'), t: new ReplaySubject<string>() });
  const after = heapUsed();
  if (m.size !== JOBS) throw new Error('lost');
  return (after - before) / JOBS;
}

const ours: number[] = [];
const bare: number[] = [];
for (let rep = 0; rep < REPS; rep++) {
  ours.push(perIdleJob());
  bare.push(perBarePair());
}
figures.push(figure(`heap per idle job, ${JOBS} held: job-registry`, 'bytes', ours));
figures.push(
  figure(`heap per idle job, ${JOBS} held: bare Behavior+ReplaySubject + uuid in a Map`, 'bytes', bare),
);
ratios.push(ratio('heap per idle job (bytes, at most)', ours, 300, false, 'absolute target (300 B)'));

// Leak check: 100k jobs x 100 tokens, each read by one subscriber, created, completed and removed.
const LEAK_JOBS = QUICK ? 10_000 : 100_000;
const start = heapUsed();
{
  const r = new JobRegistry<string>({ retention: 60_000 });
  let seen = 0;
  for (let i = 0; i < LEAK_JOBS; i++) {
    const id = r.createJob({ payload: { n: i } as never });
    const sub = r.tokens$(id).subscribe({ next: () => seen++, error: () => undefined });
    for (let k = 0; k < 100; k++) r.emit(id, 'tok');
    r.updateState(id, i % 10 === 0 ? 'failed' : 'completed', i % 10 === 0 ? 'x' : undefined);
    sub.unsubscribe();
    r.removeJob(id);
  }
  if (seen !== LEAK_JOBS * 100) throw new Error(`delivered ${seen}`);
  if (r.jobCount() !== 0) throw new Error('jobs left');
  void r.dispose();
}
const end = heapUsed();
const growth = (end - start) / start;
figures.push(
  figure(`heap before leak check`, 'bytes', [start]),
  figure(`heap after ${LEAK_JOBS} jobs x 100 tokens removed`, 'bytes', [end]),
);
ratios.push(
  ratio(
    `heap growth after ${LEAK_JOBS} jobs x 100 tokens removed (fraction, at most)`,
    [growth],
    0.1,
    false,
    'heap at start',
  ),
);
report({
  section: 'memory',
  figures,
  ratios,
  notes: [`${REPS} repetitions; heap measured after two forced GCs`],
});
