/**
 * One timer per stream for the moment it ends by itself (TTL, `Expires-At`, idle time). A deadline that
 * slid while the timer ran (a read or an append touched the stream) re-arms it instead of firing. Imports
 * no `node:` module.
 */

/** setTimeout's longest delay; a later deadline re-arms on the way. */
const MAX_DELAY = 2 ** 31 - 1;

export class Deadlines<K> {
  private readonly timers = new Map<K, ReturnType<typeof setTimeout>>();

  /**
   * @param deadlineOf - when `key` ends, in ms since the epoch (`Infinity`: never); asked again when its
   * timer fires.
   * @param due - called once the deadline has passed.
   */
  constructor(
    private readonly deadlineOf: (key: K) => number,
    private readonly due: (key: K) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** (Re)arms the timer of `key` for its deadline now. */
  schedule(key: K): void {
    this.clear(key);
    const at = this.deadlineOf(key);
    if (!(at < Infinity)) return;
    const timer = setTimeout(
      () => {
        this.timers.delete(key);
        if (this.deadlineOf(key) <= this.now()) this.due(key);
        else this.schedule(key);
      },
      Math.min(MAX_DELAY, Math.max(0, at - this.now())),
    );
    // A deadline never keeps a process alive on its own.
    (timer as { unref?: () => void }).unref?.();
    this.timers.set(key, timer);
  }

  clear(key: K): void {
    const timer = this.timers.get(key);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.timers.delete(key);
  }

  /** Clears every timer. */
  close(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
