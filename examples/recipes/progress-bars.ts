/**
 * Recipe: a console progress bar for every job, folded from `events$` (states) and `progress$` (token
 * counts) with `scan`.
 *
 * On a terminal the bars are redrawn in place, at most ten times a second (`auditTime`). Anywhere else (a
 * pipe, a CI log) each job gets a plain line when its state changes or its bar passes a quarter, so the
 * log stays short. `concurrency: 2` makes the third job wait in `queued` until a slot frees.
 *
 * Run: npx tsx examples/recipes/progress-bars.ts
 */
import {
  type Observable,
  auditTime,
  distinctUntilChanged,
  groupBy,
  lastValueFrom,
  map,
  merge,
  mergeMap,
  scan,
  takeWhile,
} from 'rxjs';
import { JobRegistry, isTerminal, type JobState } from '../../src/core/index.js';
import { model, type ModelOptions } from './model.js';

interface Plan {
  name: string;
  sentence: string;
  options: ModelOptions;
}

interface Row {
  jobId: string;
  state: JobState;
  error?: string;
  tokens: number;
}

const jobs: Plan[] = [
  { name: 'alpha', sentence: 'scan folds events and counts into one row per job', options: { delayMs: 40 } },
  {
    name: 'beta',
    sentence: 'this job fails two thirds of the way in',
    options: { delayMs: 50, failAfter: 6 },
  },
  { name: 'gamma', sentence: 'gamma waits in the queue for a free slot', options: { delayMs: 30 } },
];

const registry = new JobRegistry<string, Plan>({ concurrency: 2, progressInterval: 50 });
const plans = new Map<string, Plan>();
const total = (jobId: string): number => plans.get(jobId)!.sentence.split(' ').length;

const rows$ = merge(registry.events$, registry.progress$).pipe(
  scan((rows, e) => {
    const next = new Map(rows);
    if ('tokenCount' in e) {
      const row = rows.get(e.jobId);
      if (row !== undefined) next.set(e.jobId, { ...row, tokens: e.tokenCount });
    } else if (e.type === 'created') next.set(e.jobId, { jobId: e.jobId, state: 'queued', tokens: 0 });
    else if (e.type === 'stateChanged') {
      const row = rows.get(e.jobId);
      if (row !== undefined)
        next.set(e.jobId, { ...row, state: e.to, ...(e.error !== undefined && { error: e.error }) });
    }
    return next;
  }, new Map<string, Row>()),
  // A job's `created` event comes out of createJob before its id is returned: show it once it is named.
  map((rows) => [...rows.values()].filter((row) => plans.has(row.jobId))),
  // Until every job has ended (the `true` lets the last fold through).
  takeWhile((rows) => rows.length < jobs.length || rows.some((row) => !isTerminal(row.state)), true),
);

const WIDTH = 20;
function render(row: Row): string {
  const of = total(row.jobId);
  const filled = Math.round((row.tokens / of) * WIDTH);
  const bar = '#'.repeat(filled) + '-'.repeat(WIDTH - filled);
  const pct = `${Math.floor((row.tokens / of) * 100)}%`.padStart(4);
  const state = row.error === undefined ? row.state : `${row.state}: ${row.error}`;
  return `${plans.get(row.jobId)!.name.padEnd(6)} [${bar}] ${pct} ${`${row.tokens}/${of}`.padStart(5)}  ${state}`;
}

const view$: Observable<unknown> = process.stdout.isTTY
  ? // Redraw every bar in place: move up over the last frame, clear each line, write the new one.
    rows$.pipe(
      auditTime(100),
      scan((drawn, rows) => {
        const lines = rows.map(render);
        process.stdout.write(
          `${drawn > 0 ? `\x1b[${drawn}F` : ''}${lines.map((l) => `\x1b[2K${l}\n`).join('')}`,
        );
        return lines.length;
      }, 0),
    )
  : // One plain line per job each time its state or its quarter changes.
    rows$.pipe(
      mergeMap((rows) => rows),
      groupBy((row) => row.jobId),
      mergeMap((job) =>
        job.pipe(distinctUntilChanged((a, b) => a.state === b.state && quarter(a) === quarter(b))),
      ),
      map((row) => console.log(render(row))),
    );

function quarter(row: Row): number {
  return Math.floor((row.tokens / total(row.jobId)) * 4);
}

const done = lastValueFrom(view$, { defaultValue: undefined });
for (const plan of jobs) {
  const id = registry.createJob({ payload: plan });
  plans.set(id, plan);
  registry.executeAndStream(id, (p) => model(p!.sentence, p!.options)).subscribe({ error: () => undefined });
}
await done;
await registry.dispose();
