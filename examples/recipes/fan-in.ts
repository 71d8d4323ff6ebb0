/**
 * Recipe: one stream of several jobs' tokens (fan-in), then back apart, each job's tokens in seq order.
 *
 * `merge` interleaves the jobs' `tokens$` as the tokens arrive; each token is tagged with its job first,
 * and `catchError` turns one job's failure into an end marker, so it does not end the merged stream for
 * the others. `groupBy` then splits the merged stream by job, and each group checks its seqs and joins
 * its words.
 *
 * Run: npx tsx examples/recipes/fan-in.ts
 */
import { catchError, groupBy, lastValueFrom, map, merge, mergeMap, of, reduce, tap, toArray } from 'rxjs';
import { JobCancelledError, JobRegistry } from '../../src/core/index.js';
import { model, type ModelOptions } from './model.js';

/** A token of a job, or how the job ended when it did not complete ('failed: <why>', 'cancelled: <why>'). */
type Tagged = { job: string; seq: number; token: string } | { job: string; end: string };

const registry = new JobRegistry<string, { sentence: string; options: ModelOptions }>();

const jobs: { name: string; sentence: string; options: ModelOptions }[] = [
  { name: 'alpha', sentence: 'merge interleaves tokens as they arrive', options: { delayMs: 30 } },
  { name: 'beta', sentence: 'groupBy puts each job back together', options: { delayMs: 45 } },
  { name: 'gamma', sentence: 'one failure ends only its own group', options: { delayMs: 40, failAfter: 3 } },
];

const streams = jobs.map(({ name, sentence, options }) => {
  const id = registry.createJob({ payload: { sentence, options } });
  return registry
    .executeAndStream(id, (p) => model(p!.sentence, p!.options))
    .pipe(
      map(({ seq, token }): Tagged => ({ job: name, seq, token })),
      catchError((err: Error) =>
        of<Tagged>({
          job: name,
          end: `${err instanceof JobCancelledError ? 'cancelled' : 'failed'}: ${err.message}`,
        }),
      ),
    );
});

const summaries = merge(...streams).pipe(
  // The merged order depends on timing: print it as it comes.
  tap((t) => console.log('seq' in t ? `  ${t.job} #${t.seq} ${t.token}` : `  ${t.job} ${t.end}`)),
  groupBy((t) => t.job),
  mergeMap((group) =>
    group.pipe(
      reduce(
        (acc, t) => {
          if (!('seq' in t)) return { ...acc, end: t.end };
          // tokens$ delivers each job's seqs as 0, 1, 2, ... with no gap: check it, as a consumer may.
          if (t.seq !== acc.words.length) throw new Error(`${t.job}: seq ${t.seq} out of order`);
          return { ...acc, words: [...acc.words, t.token] };
        },
        { job: group.key, words: [] as string[], end: 'completed' },
      ),
    ),
  ),
  toArray(),
);

const result = await lastValueFrom(summaries);
console.log('per job, in seq order:');
for (const { name } of jobs) {
  const { words, end } = result.find((r) => r.job === name)!;
  console.log(`${name} (${end}, ${words.length} tokens): ${words.join(' ')}`);
}
await registry.dispose();
