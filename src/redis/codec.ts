import { isValidJobId } from '../core/ids.js';
import { isJobState, isTerminal } from '../core/states.js';
import { utc } from '../core/time.js';
import type { JobSnapshot, RegistryEvent } from '../core/types.js';

/** One entry of a shard's event stream, decoded. */
export type StreamEvent =
  | { kind: 'event'; event: RegistryEvent; origin: string; request?: string }
  | { kind: 'cancel'; jobId: string; origin: string; request: string; reason: string }
  | { kind: 'progress'; origin: string; at: number; counts: Array<[jobId: string, tokenCount: number]> };

/** Decodes an event stream entry; `undefined` for an entry this backend did not write. */
export function decodeEvent(fields: string[]): StreamEvent | undefined {
  const f = fieldMap(fields);
  const at = Number(f.at);
  if (!Number.isFinite(at) || f.origin === undefined) return undefined;
  // Token counts of many jobs of the shard: `<job id> <count>` joined by commas.
  if (f.type === 'progress') {
    if (f.jobs === undefined) return undefined;
    const counts: Array<[string, number]> = [];
    for (const pair of f.jobs.split(',')) {
      const space = pair.indexOf(' ');
      const id = pair.slice(0, space);
      const count = Number(pair.slice(space + 1));
      if (space > 0 && isValidJobId(id) && Number.isSafeInteger(count) && count >= 0)
        counts.push([id, count]);
    }
    return counts.length === 0 ? undefined : { kind: 'progress', origin: f.origin, at, counts };
  }
  if (!isValidJobId(f.job)) return undefined;
  if (f.type === 'cancel')
    return f.req === undefined
      ? undefined
      : { kind: 'cancel', jobId: f.job, origin: f.origin, request: f.req, reason: f.error ?? '' };
  const when = utc(at);
  let event: RegistryEvent;
  if (f.type === 'created') {
    event = { type: 'created', jobId: f.job, at: when };
    if (f.principal !== undefined && f.principal !== '') event.owner = f.principal;
    if (f.key !== undefined && f.key !== '') event.key = f.key;
  } else if (f.type === 'removed') event = { type: 'removed', jobId: f.job, at: when };
  else if (f.type === 'stateChanged' && isJobState(f.from) && isJobState(f.to)) {
    event = { type: 'stateChanged', jobId: f.job, from: f.from, to: f.to, at: when };
    if (f.error !== undefined && f.error !== '') {
      event.error = f.error;
      if (f.private === '1') event.errorPrivate = true;
    }
  } else return undefined;
  const out: StreamEvent = { kind: 'event', event, origin: f.origin };
  if (f.req !== undefined) out.request = f.req;
  return out;
}

/** Whether an event ends its job. */
export function isEnd(event: RegistryEvent): event is Extract<RegistryEvent, { type: 'stateChanged' }> {
  return event.type === 'stateChanged' && isTerminal(event.to);
}

/**
 * A snapshot from a job hash and the last entries of its token stream (newest first, up to two: the end
 * entry and the last token), or `undefined` when the hash is missing or not one this backend wrote.
 */
export function decodeSnapshot(
  jobId: string,
  meta: Record<string, string>,
  last: Array<[string, string[]]>,
  seqOf: (id: string) => number | undefined,
): JobSnapshot | undefined | 'corrupt' {
  if (Object.keys(meta).length === 0) return undefined;
  const created = Number(meta.created_at);
  const updated = Number(meta.updated_at);
  if (!isJobState(meta.state) || !Number.isFinite(created) || !Number.isFinite(updated)) return 'corrupt';
  let count = meta.token_count === undefined ? 0 : Number(meta.token_count);
  if (!Number.isFinite(count)) return 'corrupt';
  // A live job's count is its last token's seq + 1 (terminal jobs and unbuffered jobs store it).
  for (const [id] of last) {
    const seq = seqOf(id);
    if (seq !== undefined) {
      count = Math.max(count, seq + 1);
      break;
    }
  }
  const snap: JobSnapshot = {
    id: jobId,
    state: meta.state,
    createdAt: utc(created),
    updatedAt: utc(updated),
    tokenCount: count,
  };
  if (meta.error !== undefined && meta.error !== '') {
    snap.error = meta.error;
    if (meta.error_private === '1') snap.errorPrivate = true;
  }
  if (meta.principal !== undefined && meta.principal !== '') snap.owner = meta.principal;
  if (meta.key !== undefined && meta.key !== '') snap.key = meta.key;
  if (meta.tail_lost === '1') snap.tailLost = true;
  const first = Number(meta.first_token_at);
  if (meta.first_token_at !== undefined && Number.isFinite(first)) snap.firstTokenAt = utc(first);
  return snap;
}

export function fieldMap(fields: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i]!] = fields[i + 1]!;
  return out;
}
