import { Duration, type DurationLikeObject } from 'luxon';
import { InvalidArgumentError } from './errors.js';

/** A span of time: a luxon `Duration`, a duration object such as `{ minutes: 10 }`, or milliseconds. */
export type DurationInput = Duration | DurationLikeObject | number;

/**
 * Milliseconds of a {@link DurationInput}; `Infinity` stays `Infinity` (never).
 *
 * @throws InvalidArgumentError for a negative, NaN or malformed value.
 */
export function toMillis(value: DurationInput, name: string): number {
  let ms: number;
  if (typeof value === 'number') ms = value;
  else if (Duration.isDuration(value)) {
    if (!value.isValid)
      throw new InvalidArgumentError(`${name} is an invalid Duration (${value.invalidReason ?? 'unknown'})`);
    ms = value.toMillis();
  } else if (value !== null && typeof value === 'object') {
    let d: Duration;
    try {
      d = Duration.fromObject(value);
    } catch (e) {
      throw new InvalidArgumentError(`${name} is not a duration object: ${(e as Error).message}`);
    }
    ms = d.toMillis();
  } else {
    throw new InvalidArgumentError(
      `${name} must be a luxon Duration, a duration object or milliseconds, got ${typeof value}`,
    );
  }
  if (Number.isNaN(ms) || ms < 0)
    throw new InvalidArgumentError(`${name} must be 0 or more milliseconds, got ${ms}`);
  return ms;
}
