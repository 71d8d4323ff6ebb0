import { DateTime, FixedOffsetZone } from 'luxon';

const UTC = { zone: FixedOffsetZone.utcInstance };

// DateTimes are immutable, and jobs made in a burst share their millisecond: a two-slot cache spares a
// luxon construction (about 0.3 us) on most snapshots and events.
let cacheMsA = NaN;
let cacheDtA: DateTime | undefined;
let cacheMsB = NaN;
let cacheDtB: DateTime | undefined;

/** The UTC DateTime of an epoch-millisecond timestamp. */
export function utc(ms: number): DateTime {
  if (ms === cacheMsA) return cacheDtA!;
  if (ms === cacheMsB) return cacheDtB!;
  const dt = DateTime.fromMillis(ms, UTC);
  cacheMsB = cacheMsA;
  cacheDtB = cacheDtA;
  cacheMsA = ms;
  cacheDtA = dt;
  return dt;
}

/** A duration in the largest whole unit, for messages: `10 min`, `5 s`, `250 ms`. */
export function describeMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}
