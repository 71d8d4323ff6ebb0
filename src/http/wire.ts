import type { JobSnapshot, RegistryEvent } from '../core/types.js';

/** A job snapshot as the HTTP API sends it (snake_case, ISO 8601 times). */
export interface WireSnapshot {
  job_id: string;
  state: string;
  error?: string;
  created_at: string;
  updated_at: string;
  token_count: number;
}

/** A registry event as `/v1/events` sends it in its `data:` line. */
export interface WireEvent {
  job_id: string;
  from?: string;
  to?: string;
  error?: string;
  at: string;
}

/** The wire form of a snapshot. */
export function toWireSnapshot(s: JobSnapshot): WireSnapshot {
  const w: WireSnapshot = {
    job_id: s.id,
    state: s.state,
    created_at: s.createdAt.toISO()!,
    updated_at: s.updatedAt.toISO()!,
    token_count: s.tokenCount,
  };
  if (s.error !== undefined) w.error = s.error;
  return w;
}

/** The wire form of a registry event. */
export function toWireEvent(e: RegistryEvent): WireEvent {
  const w: WireEvent = { job_id: e.jobId, at: e.at.toISO()! };
  if (e.type === 'stateChanged') {
    w.from = e.from;
    w.to = e.to;
    if (e.error !== undefined) w.error = e.error;
  }
  return w;
}
