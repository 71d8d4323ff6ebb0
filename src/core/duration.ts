import { Duration, type DurationLikeObject } from 'luxon';
import { InvalidArgumentError } from './errors.js';

/**
 * A span of time: milliseconds, an ISO 8601 duration string (`'PT10M'`), an object such as
 * `{ minutes: 10 }`, or a luxon `Duration`.
 */
export type DurationInput = Duration | DurationLikeObject | number | string;

const FORMS =
  "milliseconds (600000), an ISO 8601 duration ('PT10M'), an object ({ minutes: 10 }) or a luxon Duration";

/**
 * Milliseconds of a {@link DurationInput}; `Infinity` stays `Infinity` (never).
 *
 * @throws InvalidArgumentError for a negative, NaN or malformed value, naming the accepted forms.
 */
export function toMillis(value: DurationInput, name: string): number {
  let ms: number;
  if (typeof value === 'number') ms = value;
  else if (typeof value === 'string') {
    const d = Duration.fromISO(value);
    if (!d.isValid)
      throw new InvalidArgumentError(`${name} must be ${FORMS}; '${value.slice(0, 40)}' is none of them`);
    ms = d.toMillis();
  } else if (Duration.isDuration(value)) {
    if (!value.isValid)
      throw new InvalidArgumentError(`${name} is an invalid Duration (${value.invalidReason ?? 'unknown'})`);
    ms = value.toMillis();
  } else if (value !== null && typeof value === 'object') {
    let d: Duration;
    try {
      d = Duration.fromObject(value);
    } catch (e) {
      throw new InvalidArgumentError(`${name} must be ${FORMS}: ${(e as Error).message}`);
    }
    ms = d.toMillis();
  } else {
    throw new InvalidArgumentError(`${name} must be ${FORMS}, got ${value === null ? 'null' : typeof value}`);
  }
  if (Number.isNaN(ms) || ms < 0)
    throw new InvalidArgumentError(`${name} must be 0 or more milliseconds, got ${ms}`);
  return ms;
}

/**
 * Milliseconds of a duration option that must be more than zero and finite.
 *
 * @throws InvalidArgumentError naming the option.
 */
export function positiveMillis(value: DurationInput, name: string): number {
  const ms = toMillis(value, name);
  if (!(ms > 0) || !Number.isFinite(ms))
    throw new InvalidArgumentError(`${name} must be a duration > 0, got ${ms} ms`);
  return ms;
}

/**
 * A number option that must be more than zero and finite (a count or a size).
 *
 * @throws InvalidArgumentError naming the option.
 */
export function positiveNumber(n: number, name: string): number {
  if (typeof n !== 'number' || !(n > 0) || !Number.isFinite(n))
    throw new InvalidArgumentError(`${name} must be a finite number > 0, got ${String(n)}`);
  return n;
}

/**
 * The value of an option that has a deprecated alias: the new name wins; both given is an error.
 *
 * @throws InvalidArgumentError when both names are given.
 */
export function aliased<V>(
  value: V | undefined,
  name: string,
  old: V | undefined,
  oldName: string,
): V | undefined {
  if (value !== undefined && old !== undefined)
    throw new InvalidArgumentError(`give ${name} or its old name ${oldName}, not both`);
  return value ?? old;
}
