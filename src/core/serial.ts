/**
 * Hands items to `handle` one at a time. An item dispatched from inside `handle` (a subscriber that emits
 * from its own callback) waits until the current one is done, so every subscriber sees one order. This is
 * the one re-entrancy queue: the token channel and the registry's event stream both extend it.
 */
export abstract class Serial<E> {
  private busy = false;
  private queue: E[] | undefined = undefined;

  /** Delivers one item; called only when no other item is being delivered. */
  protected abstract handle(item: E): void;

  protected dispatch(item: E): void {
    if (this.busy) {
      (this.queue ??= []).push(item);
      return;
    }
    this.busy = true;
    try {
      // Items left by a handler that threw go first, so the order holds.
      if (this.queue !== undefined) this.queue.push(item);
      else this.handle(item);
      const queue = this.queue;
      if (queue !== undefined) {
        for (let next = queue.shift(); next !== undefined; next = queue.shift()) this.handle(next);
        this.queue = undefined;
      }
    } finally {
      this.busy = false;
    }
  }

  /** Whether an item is being delivered now. */
  protected get dispatching(): boolean {
    return this.busy;
  }
}
