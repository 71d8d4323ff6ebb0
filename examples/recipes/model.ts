/**
 * The recipes' simulated model: it says a sentence one word at a time, each word after a delay, and can
 * think before its first word, pause mid-sentence or fail part-way. Unsubscribing stops it (that is how
 * a cancelled job stops its producer).
 */
import { Observable, concatMap, from, map, timer } from 'rxjs';
import { PublicError } from '../../src/core/index.js';

export interface ModelOptions {
  /** Wait before each word, in ms. Defaults to 20. */
  delayMs?: number;
  /** Wait before the first word instead, in ms (time spent "thinking"). Defaults to `delayMs`. */
  firstDelayMs?: number;
  /** After this many words, wait `pauseMs` before the next one. */
  pauseAfter?: number;
  /** Length of that pause, in ms. Defaults to 1000. */
  pauseMs?: number;
  /** Fail with "simulated failure" instead of saying word number `failAfter` (0-based). */
  failAfter?: number;
}

/** The words of `sentence`, one by one, as an Observable: the kind of producer `executeAndStream` takes. */
export function model(sentence: string, options: ModelOptions = {}): Observable<string> {
  const { delayMs = 20, firstDelayMs = delayMs, pauseAfter, pauseMs = 1000, failAfter } = options;
  const waitBefore = (i: number): number =>
    i === 0 ? firstDelayMs : i === pauseAfter ? delayMs + pauseMs : delayMs;
  return from(sentence.split(' ')).pipe(
    concatMap((word, i) =>
      timer(waitBefore(i)).pipe(
        map(() => {
          // PublicError: the message is safe to show to clients, so it reaches readers as written.
          if (i === failAfter) throw new PublicError('simulated failure');
          return word;
        }),
      ),
    ),
  );
}
