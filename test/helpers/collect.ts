import type { Observable } from 'rxjs';

/** Everything an Observable delivered, and how it ended. */
export interface Collected<T> {
  values: T[];
  error: unknown;
  completed: boolean;
  /** Resolves when the source completes or errors. */
  done: Promise<void>;
  unsubscribe(): void;
}

/** Subscribes and records every notification. */
export function collect<T>(source: Observable<T>): Collected<T> {
  let settle!: () => void;
  const done = new Promise<void>((resolve) => (settle = resolve));
  const out: Collected<T> = {
    values: [],
    error: undefined,
    completed: false,
    done,
    unsubscribe: () => sub.unsubscribe(),
  };
  const sub = source.subscribe({
    next: (v) => out.values.push(v),
    error: (e: unknown) => {
      out.error = e;
      settle();
    },
    complete: () => {
      out.completed = true;
      settle();
    },
  });
  return out;
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true, or fails after `timeoutMs`. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/**
 * `describe` when the condition holds, else a skipped `describe`: for suites that need a service
 * (Redis, Chromium) that a user's machine may lack. The helpers that decide throw in CI instead.
 */
export function describeIf(condition: boolean): jest.Describe {
  return condition ? describe : describe.skip;
}
