/**
 * Recipe: time to first token and tokens per second, per job, from the registry's Observables alone.
 *
 * Every `created` event on `events$` starts a watch of that job's `tokens$`; `scan` folds each token into
 * the job's figures, and `bufferTime` cuts the flow of every job into windows for a live rate.
 *
 * Run: npx tsx examples/recipes/time-to-first-token.ts
 */
import { bufferTime, filter, last, lastValueFrom, map, mergeMap, scan, take } from 'rxjs';
import { JobRegistry, type RegistryEvent } from '../../src/core/index.js';
import { model, type ModelOptions } from './model.js';

interface Figures {
  jobId: string;
  createdAt: number;
  firstAt?: number;
  lastAt: number;
  tokens: number;
}

const jobs: { name: string; sentence: string; options: ModelOptions }[] = [
  {
    name: 'eager',
    sentence: 'an eager model starts at once and streams quickly to the end',
    options: { delayMs: 25 },
  },
  {
    name: 'ponderous',
    sentence: 'a ponderous one thinks first then streams slowly',
    options: { firstDelayMs: 400, delayMs: 60 },
  },
];

const registry = new JobRegistry<string, { sentence: string; options: ModelOptions }>();
/** Job id to name; the `created` event comes out of createJob before the id is returned, so look names up late. */
const names = new Map<string, string>();
const WINDOW_MS = 250;

const created$ = registry.events$.pipe(
  filter((e): e is Extract<RegistryEvent, { type: 'created' }> => e.type === 'created'),
  take(jobs.length),
);

// Per job: fold every token into its figures; keep the last fold, when the job's tokens$ completes.
const figures$ = created$.pipe(
  mergeMap((e) =>
    registry.tokens$(e.jobId).pipe(
      scan(
        (f: Figures) => {
          const now = Date.now();
          return { ...f, firstAt: f.firstAt ?? now, lastAt: now, tokens: f.tokens + 1 };
        },
        { jobId: e.jobId, createdAt: e.at.toMillis(), lastAt: 0, tokens: 0 },
      ),
      last(),
    ),
  ),
);

// Every job together: which job each token belongs to, cut into windows of WINDOW_MS for a live rate.
const windows$ = created$.pipe(
  mergeMap((e) => registry.tokens$(e.jobId).pipe(map(() => e.jobId))),
  bufferTime(WINDOW_MS),
  map((jobIds, i) => ({ from: i * WINDOW_MS, jobIds })),
  filter(({ jobIds }) => jobIds.length > 0),
);

windows$.subscribe(({ from, jobIds }) => {
  const rates = [...names].map(([id, name]) => `${name} ${rate(jobIds.filter((j) => j === id).length)}`);
  console.log(`${from}-${from + WINDOW_MS} ms: ${rates.join(', ')} tokens/s`);
});
// lastValueFrom subscribes now, before any job exists, so no `created` event is missed.
const done = lastValueFrom(figures$.pipe(map(print)), { defaultValue: undefined });

for (const { name, sentence, options } of jobs) {
  const id = registry.createJob({ payload: { sentence, options } });
  names.set(id, name);
  registry.executeAndStream(id, (p) => model(p!.sentence, p!.options)).subscribe({ error: () => undefined });
}

await done;
await registry.dispose();

function print(f: Figures): void {
  const ttft = (f.firstAt ?? f.lastAt) - f.createdAt;
  const streaming = (f.lastAt - (f.firstAt ?? f.lastAt)) / 1000;
  // The first token starts the clock, so a job streams tokens - 1 intervals.
  const perSecond = streaming > 0 ? (f.tokens - 1) / streaming : 0;
  console.log(
    `${names.get(f.jobId)}: ${f.tokens} tokens, first after ${round(ttft, 10)} ms, then ${round(perSecond, 1)} tokens/s`,
  );
}

function rate(tokens: number): number {
  return Math.round((tokens * 1000) / WINDOW_MS);
}

function round(value: number, step: number): number {
  return Math.round(value / step) * step;
}
