import type { SchedulerLike } from 'rxjs';
import { InvalidArgumentError } from './errors.js';

/**
 * Where the registry's time comes from: its timestamps, and the timers of its deadlines (claim,
 * retention, abandon), progress batches and drain. The system clock by default; an RxJS scheduler
 * (`scheduler` option) runs them in virtual time instead (a `VirtualTimeScheduler` or `TestScheduler`).
 */
export interface Clock {
  /** Milliseconds since the epoch (or the scheduler's virtual time). */
  now(): number;
  /** Runs `fn` once after `ms`; returns its cancel. A timer never keeps the process alive on its own. */
  setTimer(fn: () => void, ms: number): () => void;
}

/** The system clock: `Date.now` and unref'd `setTimeout`s. */
export const systemClock: Clock = Object.freeze({
  now: Date.now,
  setTimer(fn: () => void, ms: number): () => void {
    const t = setTimeout(fn, ms);
    (t as { unref?: () => void }).unref?.();
    return () => clearTimeout(t);
  },
});

/** The clock of an RxJS scheduler: its `now()` and its `schedule()`. */
export function schedulerClock(scheduler: SchedulerLike): Clock {
  if (
    scheduler === null ||
    typeof scheduler !== 'object' ||
    typeof scheduler.now !== 'function' ||
    typeof scheduler.schedule !== 'function'
  )
    throw new InvalidArgumentError('scheduler must be an RxJS SchedulerLike (now() and schedule())');
  return {
    now: () => scheduler.now(),
    setTimer(fn: () => void, ms: number): () => void {
      const sub = scheduler.schedule(fn, ms);
      return () => sub.unsubscribe();
    },
  };
}
