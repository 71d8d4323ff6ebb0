/**
 * How cost grows with the work: emit throughput and heap with 10 .. 10k concurrent jobs (each with one
 * reader, tokens round-robin across jobs), and the time to replay a long job to a late reader.
 */
import { JobRegistry } from '../../src/core/index.js';
import { QUICK, figure, heapUsed, median, report, type Figure } from '../lib.js';

const figures: Figure[] = [];
const notes: string[] = [];
const TOTAL = QUICK ? 200_000 : 1_000_000;
const REPS = QUICK ? 2 : 5;

const perJob: Array<[number, number]> = [];
// Warm the JIT on the same code first, so the first job count is not measured cold.
for (const jobs of [10, 1000]) {
  const r = new JobRegistry<string>({ replayLimit: 100 });
  const ids = Array.from({ length: jobs }, () => r.createJob());
  for (const id of ids) r.tokens$(id).subscribe({ error: () => undefined });
  for (let k = 0; k < 20_000 / jobs; k++) for (const id of ids) r.emit(id, 'tok');
  void r.dispose();
}
for (const jobs of [10, 100, 1000, 10_000]) {
  const rates: number[] = [];
  const heaps: number[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    const base = heapUsed();
    const r = new JobRegistry<string>({ replayLimit: 100 });
    const ids = Array.from({ length: jobs }, () => r.createJob());
    let seen = 0;
    for (const id of ids) r.tokens$(id).subscribe({ next: () => seen++, error: () => undefined });
    const perJobTokens = Math.max(1, Math.floor(TOTAL / jobs));
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < perJobTokens; k++) for (let j = 0; j < jobs; j++) r.emit(ids[j]!, 'tok');
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    rates.push((perJobTokens * jobs) / secs);
    heaps.push((heapUsed() - base) / jobs);
    if (seen !== perJobTokens * jobs) throw new Error('lost tokens');
    void r.dispose();
  }
  figures.push(
    figure(`emit throughput, ${jobs} concurrent jobs (1 reader each, replayLimit 100)`, 'tokens/s', rates),
  );
  const kept = Math.min(100, Math.max(1, Math.floor(TOTAL / jobs)));
  figures.push(figure(`heap per job, ${jobs} concurrent jobs with ${kept} tokens kept each`, 'bytes', heaps));
  perJob.push([jobs, median(rates)]);
}
const first = perJob[0]![1];
const knee = perJob.find(([, rate]) => rate < first * 0.7);
notes.push(
  knee === undefined
    ? 'emit throughput stays within 30% of the 10-job rate up to 10k concurrent jobs (linear total cost)'
    : `emit throughput falls below 70% of the 10-job rate at ${knee[0]} concurrent jobs (cache misses across job records)`,
);

// Replay a long job to a late reader.
const LONG = QUICK ? 20_000 : 100_000;
const replays: number[] = [];
for (let rep = 0; rep < REPS + 2; rep++) {
  const r = new JobRegistry<string>();
  const id = r.createJob();
  for (let i = 0; i < LONG; i++) r.emit(id, 'tok');
  r.updateState(id, 'completed');
  let n = 0;
  const t0 = process.hrtime.bigint();
  r.tokens$(id).subscribe(() => n++);
  replays.push(Number(process.hrtime.bigint() - t0) / 1e6);
  if (n !== LONG) throw new Error('short replay');
  void r.dispose();
}
figures.push(figure(`replay of a ${LONG}-token job to a late reader`, 'ms', replays));
report({ section: 'scaling', figures, ratios: [], notes });
