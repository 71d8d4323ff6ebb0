import { VirtualAction, VirtualTimeScheduler } from 'rxjs';

/** Virtual time for a registry's `scheduler` option: timers run only when the test advances the clock. */
export interface VirtualClock {
  scheduler: VirtualTimeScheduler;
  /** The virtual time now, in ms (starts at 0). */
  now(): number;
  /** Moves the clock `ms` forward, running every timer due on the way, in order. */
  advance(ms: number): void;
}

export function virtualClock(): VirtualClock {
  const scheduler = new VirtualTimeScheduler(VirtualAction, 0);
  return {
    scheduler,
    now: () => scheduler.now(),
    advance(ms: number) {
      const to = scheduler.frame + ms;
      scheduler.maxFrames = to;
      scheduler.flush();
      scheduler.frame = to;
    },
  };
}
