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
  /**
   * Runs `fn` once after `ms` (any finite length); returns its cancel. On the system clock a timer keeps
   * the process alive only when `keepAlive` says so (a drain the process waits for).
   */
  setTimer(fn: () => void, ms: number, keepAlive?: boolean): () => void;
}

/** setTimeout's longest delay: a longer one would fire at once. */
const MAX_DELAY = 2 ** 31 - 1;

/** The system clock: `Date.now` and `setTimeout`s, unref'd unless asked to keep the process alive. */
export const systemClock: Clock = Object.freeze({
  now: Date.now,
  setTimer(fn: () => void, ms: number, keepAlive = false): () => void {
    let t: ReturnType<typeof setTimeout>;
    const arm = (left: number): void => {
      // A delay past setTimeout's range is served in steps.
      t = setTimeout(() => (left > MAX_DELAY ? arm(left - MAX_DELAY) : fn()), Math.min(left, MAX_DELAY));
      if (!keepAlive) (t as { unref?: () => void }).unref?.();
    };
    arm(Math.max(0, ms));
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
