/**
 * One timer for many deadlines. Every deadline of the same length lands in a FIFO queue of its own, where
 * expiry order equals insertion order, so scheduling and cancelling are O(1) and a registry holding 100k
 * jobs holds one timer, not 100k.
 */

import { systemClock, type Clock } from './clock.js';

/** A scheduled deadline; `cancel` it by passing it back to {@link Deadlines.cancel}. */
export interface Deadline<K> {
  readonly at: number;
  readonly delay: number;
  key: K | undefined;
}

interface Lane<K> {
  items: Deadline<K>[];
  head: number;
  stale: number;
}

const COMPACT_MIN = 1024;
// setTimeout's largest delay; later deadlines are re-armed when it fires.
const MAX_TIMER = 2_147_483_647;

/** A set of deadlines served by one timer of the clock. */
export class Deadlines<K> {
  private readonly lanes = new Map<number, Lane<K>>();
  private cancelTimer: (() => void) | undefined;
  private timerAt = Infinity;
  private size = 0;
  private readonly now: () => number;

  constructor(
    private readonly onExpire: (key: K) => void,
    private readonly clock: Clock = systemClock,
  ) {
    this.now = () => clock.now();
  }

  /**
   * Calls `onExpire(key)` once `delay` ms have passed since `from` (now, unless the caller just read the
   * clock), unless cancelled first.
   */
  schedule(key: K, delay: number, from = this.now()): Deadline<K> {
    const d: Deadline<K> = { at: from + delay, delay, key };
    let lane = this.lanes.get(delay);
    if (lane === undefined) {
      lane = { items: [], head: 0, stale: 0 };
      this.lanes.set(delay, lane);
    }
    lane.items.push(d);
    this.size++;
    if (d.at < this.timerAt) this.arm(d.at);
    return d;
  }

  /** Forgets a deadline; it never fires. Idempotent. */
  cancel(d: Deadline<K>): void {
    if (d.key === undefined) return;
    d.key = undefined;
    const lane = this.lanes.get(d.delay);
    if (lane === undefined) return;
    lane.stale++;
    this.size--;
    const live = lane.items.length - lane.head;
    if (lane.stale >= COMPACT_MIN && lane.stale * 2 > live) {
      lane.items = lane.items.slice(lane.head).filter((x) => x.key !== undefined);
      lane.head = 0;
      lane.stale = 0;
    }
    // The timer stays armed even when nothing is left: re-arming costs more than one idle wake-up.
  }

  /** Drops every deadline and the timer. */
  clear(): void {
    for (const lane of this.lanes.values())
      for (let i = lane.head; i < lane.items.length; i++) lane.items[i]!.key = undefined;
    this.lanes.clear();
    this.size = 0;
    this.stop();
  }

  private stop(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.timerAt = Infinity;
  }

  private arm(at: number): void {
    this.cancelTimer?.();
    this.timerAt = at;
    this.cancelTimer = this.clock.setTimer(
      () => this.fire(),
      Math.min(MAX_TIMER, Math.max(0, at - this.now())),
    );
  }

  private fire(): void {
    this.cancelTimer = undefined;
    this.timerAt = Infinity;
    const now = this.now();
    const due: K[] = [];
    let next = Infinity;
    for (const [delay, lane] of this.lanes) {
      const { items } = lane;
      while (lane.head < items.length && items[lane.head]!.at <= now) {
        const d = items[lane.head++]!;
        if (d.key === undefined) lane.stale--;
        else {
          due.push(d.key);
          d.key = undefined;
          this.size--;
        }
      }
      while (lane.head < items.length && items[lane.head]!.key === undefined) {
        lane.head++;
        lane.stale--;
      }
      if (lane.head === items.length) this.lanes.delete(delay);
      else {
        if (lane.head >= COMPACT_MIN && lane.head * 2 > items.length) {
          lane.items = items.slice(lane.head);
          lane.head = 0;
        }
        next = Math.min(next, lane.items[lane.head]!.at);
      }
    }
    if (next !== Infinity) this.arm(next);
    for (const key of due) this.onExpire(key);
  }
}
