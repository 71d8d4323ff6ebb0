/**
 * Recipe: resubmit a failed job, a bounded number of times, as a new job each time.
 *
 * A job's end is final, so a retry is a new job: `defer` creates and runs one per subscription, and
 * `retry({ count, delay })` subscribes again after a `JobFailedError` (not after a cancel: a cancelled
 * job was stopped on purpose). Each attempt's tokens are tagged with the attempt, so the reader can drop
 * the words of an attempt that failed half-way. The failed jobs stay in the registry, as `failed`, until
 * their retention ends.
 *
 * Run: npx tsx examples/recipes/resubmit.ts
 */
import { defer, lastValueFrom, map, retry, scan, throwError, timer } from 'rxjs';
import { JobFailedError, JobRegistry, type JobState } from '../../src/core/index.js';
import { model, type ModelOptions } from './model.js';

interface Request {
  sentence: string;
  /** Words said before the model fails, per attempt; past the list's end it does not fail. */
  failures: number[];
}

const MAX_RETRIES = 2;
const registry = new JobRegistry<string, ModelOptions & { sentence: string }>();

/** The request's words, from the first attempt that completes; errors once MAX_RETRIES resubmissions failed. */
function generate(name: string, request: Request): Promise<string> {
  let attempt = 0;
  let lastJob = '';
  const attempts$ = defer(() => {
    const n = ++attempt;
    const failAfter = request.failures[n - 1];
    lastJob = registry.createJob({
      payload: { sentence: request.sentence, delayMs: 15, ...(failAfter !== undefined && { failAfter }) },
    });
    return registry
      .executeAndStream(lastJob, (p) => model(p!.sentence, p))
      .pipe(map(({ token }) => ({ attempt: n, token })));
  });
  return lastValueFrom(
    attempts$.pipe(
      retry({
        count: MAX_RETRIES,
        delay: (err: unknown, retryCount) => {
          if (!(err instanceof JobFailedError)) return throwError(() => err);
          const tokens = registry.getJob(lastJob)!.tokenCount;
          console.log(
            `${name}: attempt ${retryCount} failed after ${tokens} token${tokens === 1 ? '' : 's'} (${err.message}); resubmitting`,
          );
          return timer(50 * retryCount); // back off a little more each time
        },
      }),
      // Words of the current attempt only: a new attempt starts the sentence over.
      scan(
        (acc, { attempt: n, token }) =>
          n === acc.attempt ? { attempt: n, words: [...acc.words, token] } : { attempt: n, words: [token] },
        { attempt: 0, words: [] as string[] },
      ),
      map(({ attempt: n, words }) => `attempt ${n}: ${words.join(' ')}`),
    ),
  );
}

const flaky = await generate('flaky', {
  sentence: 'a new job per attempt keeps every failure on record',
  failures: [2, 5],
});
console.log(`flaky: completed on ${flaky}`);

await generate('broken', { sentence: 'this one never gets far', failures: [1, 1, 1] }).catch((err: Error) =>
  console.log(`broken: gave up after ${MAX_RETRIES + 1} attempts (${err.message})`),
);

const states = (await registry.listJobs()).map((job) => job.state);
const count = (s: JobState): number => states.filter((x) => x === s).length;
console.log(`registry: ${states.length} jobs, ${count('completed')} completed, ${count('failed')} failed`);
await registry.dispose();
