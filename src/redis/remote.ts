import { Observable, type Subject } from 'rxjs';
import { BackendError, JobNotFoundError } from '../core/errors.js';
import { uuidV4 } from '../core/ids.js';
import { isTerminal } from '../core/states.js';
import type { JobSnapshot, JobState, JobStatus } from '../core/types.js';
import { isEnd, type StreamEvent } from './codec.js';
import type { Connection } from './connection.js';
import type { Keys } from './keys.js';
import type { Writer } from './writer.js';

/** What cancel and status of a job held elsewhere need from the backend. */
export interface RemoteContext {
  conn: Connection;
  keys: Keys;
  leaseMs: number;
  /** Every entry of every shard's event stream, decoded. */
  stream: Subject<StreamEvent>;
  writer: Writer;
  /** A CAS end written by this process; true when it moved the job. */
  endRemote(jobId: string, to: 'cancelled', error: string, request: string): Promise<boolean>;
  watch(jobId: string, onVanish: (error: Error) => void): () => void;
  findJob(jobId: string): Promise<JobSnapshot | undefined>;
}

/**
 * Cancels a job held by another process by asking its owner (through the job's shard stream), so the one
 * process that writes a live job's states also writes its end: every process reports one end. A dead
 * owner's job is cancelled here directly. Resolves `true` when this request moved the job, `false` when
 * it had ended, `undefined` when Redis does not know it.
 */
export async function remoteCancel(
  c: RemoteContext,
  jobId: string,
  reason: string,
): Promise<boolean | undefined> {
  const request = uuidV4();
  let answered!: (moved: boolean) => void;
  const answer = new Promise<boolean>((resolve) => (answered = resolve));
  const sub = c.stream.subscribe((s) => {
    if (s.kind === 'event' && s.event.jobId === jobId && isEnd(s.event)) answered(s.request === request);
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const [state, owner] = await c.conn.cmd.hmget(c.keys.meta(jobId), 'state', 'owner');
    if (state === null) return undefined;
    if (isTerminal(state as JobState)) return false;
    const ownerAlive = owner !== null && (await c.conn.cmd.exists(c.keys.owner(owner))) === 1;
    if (!ownerAlive) return c.endRemote(jobId, 'cancelled', reason, request);
    c.writer.cancelRequest(jobId, reason, request, Date.now());
    await c.writer.flush();
    const waitMs = 2 * c.leaseMs;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), waitMs)));
    const moved = await Promise.race([answer, late]);
    if (moved !== 'late') return moved;
    if ((await c.conn.cmd.exists(c.keys.owner(owner))) === 0)
      return c.endRemote(jobId, 'cancelled', reason, request);
    throw new BackendError(
      `job-registry: the process holding job '${jobId}' did not answer a cancel within ${waitMs} ms`,
    );
  } finally {
    sub.unsubscribe();
    if (timer !== undefined) clearTimeout(timer);
  }
}

/** Status of a job held by another process: its state now, then each change; ends as `state$` does. */
export function remoteStatus(c: RemoteContext, jobId: string): Observable<JobStatus> {
  return new Observable<JobStatus>((sub) => {
    let last: JobState | undefined;
    const emit = (status: JobStatus): void => {
      if (last !== undefined && (last === status.state || isTerminal(last))) return;
      last = status.state;
      sub.next(status);
      if (isTerminal(status.state)) sub.complete();
    };
    const events = c.stream.subscribe({
      next: (s) => {
        if (s.kind !== 'event' || s.event.jobId !== jobId) return;
        const ev = s.event;
        if (ev.type === 'stateChanged')
          emit({
            state: ev.to,
            at: ev.at,
            ...(ev.error !== undefined ? { error: ev.error } : {}),
            ...(ev.errorPrivate ? { errorPrivate: true as const } : {}),
          });
        else if (ev.type === 'removed') sub.complete();
      },
      complete: () => sub.complete(),
    });
    // Removal or lost data ends the status stream as removal does.
    const unwatch = c.watch(jobId, () => sub.complete());
    c.findJob(jobId).then(
      (snap) => {
        if (snap === undefined)
          sub.error(new JobNotFoundError(jobId, 'not in this process nor in Redis; it may have expired'));
        else if (last === undefined)
          emit({
            state: snap.state,
            at: snap.updatedAt,
            ...(snap.error !== undefined ? { error: snap.error } : {}),
            ...(snap.errorPrivate ? { errorPrivate: true as const } : {}),
          });
      },
      (e: unknown) => sub.error(e), // findJob fails with BackendError already
    );
    return () => {
      events.unsubscribe();
      unwatch();
    };
  });
}
