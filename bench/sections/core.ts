/**
 * Core hot paths, each side by side with its baseline in alternating repetitions:
 * - emit to 1 and 10 tokens$ subscribers vs a bare RxJS ReplaySubject (unbounded) doing the same;
 * - emit with replayLimit 1000 vs new ReplaySubject(1000), and vs our own unbounded emit;
 * - job churn (create, one token, complete, remove) vs bare BehaviorSubject + ReplaySubject + uuid in a Map.
 */
import { BehaviorSubject, ReplaySubject } from 'rxjs';
import { v4 as uuidv4 } from 'uuid';
import { JobRegistry, type TokenEvent } from '../../src/core/index.js';
import { QUICK, figure, nsPerOp, ratio, report, type Figure, type Ratio } from '../lib.js';

const REPS = QUICK ? 3 : 7;
const TOKENS = QUICK ? 100_000 : 500_000;
const CHURN = QUICK ? 50_000 : 200_000;

let sink = 0;
const consume = (ev: TokenEvent<string>): void => {
  sink += ev.seq;
};

function rxReplay(n: number, subscribers: number, limit?: number): void {
  const rs =
    limit === undefined
      ? new ReplaySubject<TokenEvent<string>>()
      : new ReplaySubject<TokenEvent<string>>(limit);
  for (let s = 0; s < subscribers; s++) rs.subscribe(consume);
  for (let i = 0; i < n; i++) rs.next({ seq: i, token: 'tok' });
  rs.complete();
}

function ours(n: number, subscribers: number, limit?: number): void {
  const r = new JobRegistry<string>(limit === undefined ? {} : { replayLimit: limit });
  const id = r.createJob();
  for (let s = 0; s < subscribers; s++) r.tokens$(id).subscribe(consume);
  for (let i = 0; i < n; i++) r.emit(id, 'tok');
  r.updateState(id, 'completed');
  void r.dispose();
}

function bareChurn(n: number): void {
  const jobs = new Map<string, { status: BehaviorSubject<string>; tokens: ReplaySubject<string> }>();
  for (let i = 0; i < n; i++) {
    const id = 'job-' + uuidv4();
    const job = { status: new BehaviorSubject('queued'), tokens: new ReplaySubject<string>() };
    jobs.set(id, job);
    job.tokens.next('tok');
    job.status.next('running');
    job.status.next('completed');
    job.status.complete();
    job.tokens.complete();
    jobs.delete(id);
  }
}

function ourChurn(n: number): void {
  const r = new JobRegistry<string>();
  for (let i = 0; i < n; i++) {
    const id = r.createJob();
    r.emit(id, 'tok');
    r.updateState(id, 'completed');
    r.removeJob(id);
  }
  void r.dispose();
}

const figures: Figure[] = [];
const ratios: Ratio[] = [];
const cases: Array<{
  name: string;
  a: (n: number) => void;
  b: (n: number) => void;
  n: number;
  target: number;
  baseline: string;
  /** The goal holds in every run (judged on the slowest run), not only at the median. */
  everyRun?: boolean;
}> = [
  {
    name: 'emit, 1 subscriber, replay kept',
    a: (n) => ours(n, 1),
    b: (n) => rxReplay(n, 1),
    n: TOKENS,
    target: 1.0,
    baseline: 'ReplaySubject()',
  },
  {
    name: 'emit, 10 subscribers, replay kept',
    a: (n) => ours(n, 10),
    b: (n) => rxReplay(n, 10),
    n: TOKENS / 5,
    target: 0.9,
    baseline: 'ReplaySubject()',
  },
  {
    name: 'emit, replayLimit 1000',
    a: (n) => ours(n, 1, 1000),
    b: (n) => rxReplay(n, 1, 1000),
    n: TOKENS / 5,
    target: 1.5,
    baseline: 'ReplaySubject(1000)',
    everyRun: true,
  },
  {
    name: 'emit, replayLimit 1000 vs our unbounded',
    a: (n) => ours(n, 1, 1000),
    b: (n) => ours(n, 1),
    n: TOKENS,
    target: 0.8,
    baseline: 'JobRegistry, unbounded',
  },
  {
    name: 'job churn',
    a: ourChurn,
    b: bareChurn,
    n: CHURN,
    target: 0.8,
    baseline: 'BehaviorSubject + ReplaySubject + uuid in a Map',
  },
];

for (const c of cases) {
  const ourRuns: number[] = [];
  const baseRuns: number[] = [];
  const speedups: number[] = [];
  // Warm both up, then alternate which goes first.
  c.a(Math.min(c.n, 20_000));
  c.b(Math.min(c.n, 20_000));
  for (let rep = 0; rep < REPS; rep++) {
    let ta: number;
    let tb: number;
    if (rep % 2 === 0) {
      ta = nsPerOp(c.n, c.a);
      tb = nsPerOp(c.n, c.b);
    } else {
      tb = nsPerOp(c.n, c.b);
      ta = nsPerOp(c.n, c.a);
    }
    ourRuns.push(ta);
    baseRuns.push(tb);
    speedups.push(tb / ta);
  }
  figures.push(
    figure(`${c.name}: job-registry`, 'ns/op', ourRuns),
    figure(`${c.name}: ${c.baseline}`, 'ns/op', baseRuns),
  );
  ratios.push(
    c.everyRun === true
      ? ratio(
          `${c.name} (speed vs ${c.baseline}, slowest run)`,
          [Math.min(...speedups)],
          c.target,
          true,
          c.baseline,
          `every run: ${speedups.map((x) => x.toFixed(2)).join(', ')}`,
        )
      : ratio(`${c.name} (speed vs ${c.baseline})`, speedups, c.target, true, c.baseline),
  );
}
if (sink === -1) console.log(sink);
report({
  section: 'core',
  figures,
  ratios,
  notes: [`${REPS} repetitions, alternating order; ratio = baseline time / our time (higher is faster)`],
});
