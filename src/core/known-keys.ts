import { InvalidArgumentError } from './errors.js';

/**
 * Refuses an options object with a key that is not one of `known` (a misspelling JavaScript callers
 * would otherwise never hear of), naming the closest known key.
 *
 * @throws InvalidArgumentError
 */
export function checkKnownKeys(options: object, known: readonly string[], what: string): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const near = closest(key, known);
    throw new InvalidArgumentError(
      `${what} has no option '${key.slice(0, 60)}'${near === undefined ? '' : `; did you mean '${near}'?`} ` +
        `(known: ${known.join(', ')})`,
    );
  }
}

/** The known key nearest to `key` by edit distance, when it is near enough to be a misspelling. */
export function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const k = key.toLowerCase();
  for (const candidate of known) {
    const d = distance(k, candidate.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = candidate;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/** Edit distance with adjacent swaps (optimal string alignment): `retnetion` is 1 from `retention`. */
function distance(a: string, b: string): number {
  if (a.length > 64 || b.length > 64) return Infinity;
  let before: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, before[j - 2]! + 1);
      row.push(d);
    }
    before = prev;
    prev = row;
  }
  return prev[b.length]!;
}
