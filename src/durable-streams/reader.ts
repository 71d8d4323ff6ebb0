/**
 * Reads a job's tokens for the Durable Streams handlers: what is there now (catch-up), and a wait for
 * more (long-poll). Both end on the job's end, whatever the end (a failed or cancelled job is a closed
 * stream to a Durable Streams reader). Imports no `node:` module.
 */
import type { Observable, Subscription } from 'rxjs';
import { JobCancelledError, JobFailedError } from '../core/errors.js';
import type { JobRegistry } from '../core/registry.js';
import type { TokenEvent } from '../core/types.js';

/** Whether an error of `tokens$` is just the job's end (failed or cancelled). */
export function isJobEnd(e: unknown): boolean {
  return e instanceof JobFailedError || e instanceof JobCancelledError;
}

/**
 * The tokens with seq in `[from, upto)`, at most `maxTokens` (fewer when the job ends first). In memory
 * they come at once from the replay buffer; from a shared backend, as fast as it replays them.
 */
export function readRange(
  registry: JobRegistry<unknown, unknown>,
  jobId: string,
  from: number,
  upto: number,
  maxTokens: number,
): Promise<unknown[]> {
  const last = Math.min(upto, from + maxTokens) - 1;
  if (last < from) return Promise.resolve([]);
  return new Promise<unknown[]>((resolve, reject) => {
    const out: unknown[] = [];
    let done = false;
    let sub: Subscription | undefined;
    const finish = (e?: unknown): void => {
      if (done) return;
      done = true;
      sub?.unsubscribe();
      if (e === undefined || isJobEnd(e)) resolve(out);
      else reject(e);
    };
    sub = registry.tokens$(jobId, from === 0 ? {} : { after: from - 1 }).subscribe({
      next: (ev) => {
        if (done) return;
        out.push(ev.token);
        if (ev.seq >= last) finish();
      },
      error: (e: unknown) => finish(e),
      complete: () => finish(),
    });
    if (done) sub.unsubscribe();
  });
}

/** The bytes a chunk takes in a read: its bytes (a binary string), or its JSON text. */
export function tokenBytes(token: unknown, json: boolean): number {
  return json ? (JSON.stringify(token) ?? 'null').length : (token as string).length;
}

/** The first chunks that fit in `maxBytes` (always at least one, so a reader makes progress). */
export function boundByBytes(tokens: unknown[], maxBytes: number, json: boolean): unknown[] {
  let size = 0;
  for (let i = 0; i < tokens.length; i++) {
    size += tokenBytes(tokens[i], json);
    if (size > maxBytes && i > 0) return tokens.slice(0, i);
  }
  return tokens;
}

/** How a wait for more tokens ended. */
export type WaitResult = 'data' | 'ended' | 'timeout';

/**
 * Waits until `tokens$` (a stream's chunks from the offset waited at) gives one, or ends, or `timeoutMs`
 * passes. `waits` (kept by the caller to end every wait on shutdown) ends it as a timeout.
 */
export function waitFor(
  tokens$: Observable<TokenEvent<unknown>>,
  timeoutMs: number,
  waits: Set<() => void>,
): Promise<WaitResult> {
  return new Promise<WaitResult>((resolve, reject) => {
    let done = false;
    let sub: Subscription | undefined;
    const finish = (r: WaitResult | Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      waits.delete(cancel);
      sub?.unsubscribe();
      if (r instanceof Error) reject(r);
      else resolve(r);
    };
    const cancel = (): void => finish('timeout');
    const timer = setTimeout(cancel, timeoutMs);
    waits.add(cancel);
    sub = tokens$.subscribe({
      next: () => finish('data'),
      error: (e: unknown) => finish(isJobEnd(e) ? 'ended' : e instanceof Error ? e : new Error(String(e))),
      complete: () => finish('ended'),
    });
    if (done) sub.unsubscribe();
  });
}
