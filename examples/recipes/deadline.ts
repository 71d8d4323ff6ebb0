/**
 * Recipe: deadlines that cancel a job: one for its first token, one for the silence between tokens.
 *
 * `timeout({ first, each })` errors with a `TimeoutError` when the first token is late or a later one
 * does not follow in time; `catchError` turns that into `registry.cancel(id, reason)`, which ends the job
 * for every reader and aborts its executor (the model stops, as its `tap({ unsubscribe })` shows).
 *
 * Run: npx tsx examples/recipes/deadline.ts
 */
import {
  EMPTY,
  TimeoutError,
  catchError,
  from,
  lastValueFrom,
  mergeMap,
  tap,
  throwError,
  timeout,
} from 'rxjs';
import { JobRegistry } from '../../src/core/index.js';
import { model, type ModelOptions } from './model.js';

const FIRST_TOKEN_MS = 300;
const BETWEEN_TOKENS_MS = 200;

const registry = new JobRegistry<string, ModelOptions>();

async function runWithDeadline(name: string, options: ModelOptions): Promise<void> {
  const id = registry.createJob({ payload: options });
  let said = 0;
  let seen = 0;
  const tokens$ = registry.executeAndStream(id, (p) =>
    model('a deadline keeps a slow job from holding its reader forever', p).pipe(
      tap({
        next: () => said++,
        // Only when the job is cancelled (or removed): the registry unsubscribes its producer.
        unsubscribe: () => console.log(`${name}: model stopped after ${said} words`),
      }),
    ),
  );
  await lastValueFrom(
    tokens$.pipe(
      tap(() => seen++),
      timeout({ first: FIRST_TOKEN_MS, each: BETWEEN_TOKENS_MS }),
      catchError((err: unknown) => {
        if (!(err instanceof TimeoutError)) return throwError(() => err);
        const reason =
          seen === 0 ? `no token within ${FIRST_TOKEN_MS} ms` : `silent for ${BETWEEN_TOKENS_MS} ms`;
        // cancel resolves once the job is cancelled; the reader then ends quietly.
        return from(registry.cancel(id, reason)).pipe(mergeMap(() => EMPTY));
      }),
    ),
    { defaultValue: undefined },
  );
  const job = registry.getJob(id)!;
  console.log(`${name}: ${job.state}${job.error ? ` (${job.error})` : ''}, ${job.tokenCount} tokens`);
}

// One after another, so the lines come out in a fixed order.
await runWithDeadline('quick', { delayMs: 20 });
await runWithDeadline('late', { firstDelayMs: 1000 });
await runWithDeadline('stalls', { delayMs: 20, pauseAfter: 3, pauseMs: 1000 });
await registry.dispose();
