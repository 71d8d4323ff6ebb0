import { utc } from '../core/time.js';
import type { JobProgress, JobSnapshot, RegistryEvent } from '../core/types.js';

/** A job snapshot as the HTTP API sends it (snake_case, ISO 8601 times). */
export interface WireSnapshot {
  /** The job's id. */
  job_id: string;
  /** `queued`, `running`, `completed`, `failed` or `cancelled`. */
  state: string;
  /** Why the job failed or was cancelled (`job failed` when the producer's error is private). */
  error?: string;
  /** The principal that created the job, when it has one. */
  owner?: string;
  /** The key the job was created under (a chat id, say), when it has one. */
  key?: string;
  /** When the job was created (ISO 8601). */
  created_at: string;
  /** When the job last changed state (ISO 8601). */
  updated_at: string;
  /** How many tokens the job has had so far. */
  token_count: number;
  /** When the job's first token came (ISO 8601); absent until then. */
  first_token_at?: string;
}

/** A registry event as `/v1/events` sends it in its `data:` line. */
export interface WireEvent {
  /** The job's id. */
  job_id: string;
  /** The state the job left (`stateChanged`). */
  from?: string;
  /** The state the job entered (`stateChanged`). */
  to?: string;
  /** Why the job failed or was cancelled (`job failed` when the producer's error is private). */
  error?: string;
  /** The principal that created the job (`created`), when it has one. */
  owner?: string;
  /** The key the job was created under (`created`), when it has one. */
  key?: string;
  /** When it happened (ISO 8601). */
  at: string;
}

/** What clients see of a producer's error that was not marked public (see `exposeErrors`). */
export const REDACTED_ERROR = 'job failed';

/**
 * The error text a client may see: a private one (a producer's error not marked public) is replaced by
 * {@link REDACTED_ERROR} unless `expose` is set.
 */
export function visibleError(error: string, errorPrivate: boolean | undefined, expose = false): string {
  return errorPrivate === true && !expose ? REDACTED_ERROR : error;
}

/** The reason a cancel over HTTP gives (`DELETE` of a job, `POST …/cancel` of a response). */
export const CANCEL_REASON = 'cancelled by request';

/**
 * What a cancel that took effect answers when the job is gone by the time it is read again: on a shared
 * backend the cancel's answer can take longer than `retention` (Redis paused, a reconnect), and the job
 * expires meanwhile. It is the job as the caller last saw it, cancelled now for `reason`.
 */
export function cancelledSnapshot(before: JobSnapshot, reason: string): JobSnapshot {
  const { error: _error, errorPrivate: _private, ...rest } = before;
  return { ...rest, state: 'cancelled', error: reason, updatedAt: utc(Date.now()) };
}

/** The wire form of a snapshot; `exposeErrors` shows private errors verbatim. */
export function toWireSnapshot(s: JobSnapshot, exposeErrors = false): WireSnapshot {
  const w: WireSnapshot = {
    job_id: s.id,
    state: s.state,
    created_at: s.createdAt.toISO()!,
    updated_at: s.updatedAt.toISO()!,
    token_count: s.tokenCount,
  };
  if (s.error !== undefined) w.error = visibleError(s.error, s.errorPrivate, exposeErrors);
  if (s.owner !== undefined) w.owner = s.owner;
  if (s.key !== undefined) w.key = s.key;
  if (s.firstTokenAt !== undefined) w.first_token_at = s.firstTokenAt.toISO()!;
  return w;
}

/** The wire form of a registry event; `exposeErrors` shows private errors verbatim. */
export function toWireEvent(e: RegistryEvent, exposeErrors = false): WireEvent {
  const w: WireEvent = { job_id: e.jobId, at: e.at.toISO()! };
  if (e.type === 'stateChanged') {
    w.from = e.from;
    w.to = e.to;
    if (e.error !== undefined) w.error = visibleError(e.error, e.errorPrivate, exposeErrors);
  } else if (e.type === 'created') {
    if (e.owner !== undefined) w.owner = e.owner;
    if (e.key !== undefined) w.key = e.key;
  }
  return w;
}

/** A `progress` event as `/v1/events` sends it. */
export interface WireProgress {
  /** The job's id. */
  job_id: string;
  /** How many tokens the job has had so far. */
  token_count: number;
  /** When that count was read (ISO 8601). */
  at: string;
}

/** The wire form of a job's progress. */
export function toWireProgress(p: JobProgress): WireProgress {
  return { job_id: p.jobId, token_count: p.tokenCount, at: p.at.toISO()! };
}
