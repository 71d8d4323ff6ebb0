import type { JobState } from './types.js';

/** Every job state, in lifecycle order. */
export const JOB_STATES: readonly JobState[] = Object.freeze([
  'queued',
  'running',
  'completed',
  'failed',
  'cancelled',
]);

/** True for a string that is one of the five job states. */
export function isJobState(value: unknown): value is JobState {
  return (
    value === 'queued' ||
    value === 'running' ||
    value === 'completed' ||
    value === 'failed' ||
    value === 'cancelled'
  );
}

/** True for `completed`, `failed` and `cancelled`: states a job never leaves. */
export function isTerminal(state: JobState): boolean {
  return state === 'completed' || state === 'failed' || state === 'cancelled';
}

/** Whether the state machine allows `from -> to` (the same state is not a transition). */
export function canTransition(from: JobState, to: JobState): boolean {
  if (from === 'queued') return to !== 'queued';
  if (from === 'running') return to === 'completed' || to === 'failed' || to === 'cancelled';
  return false;
}
