import type { Subscription } from 'rxjs';
import type { JobRegistry } from '../core/registry.js';
import type { JobProgress, JobSnapshot, RegistryEvent } from '../core/types.js';
import type { Access, Caller } from './access.js';
import type { Closable } from './connections.js';
import type { SseSink } from './sink.js';
import { sseEvent } from './sse.js';
import { toWireEvent, toWireProgress, toWireSnapshot } from './wire.js';

/** What one `/v1/events` stream sends after its snapshot. */
type Item = RegistryEvent | ({ type: 'progress' } & JobProgress);

/** What one `/v1/events` stream needs from its handler. */
export interface EventStreamContext<Req> {
  registry: JobRegistry<unknown, unknown>;
  access: Access<Req>;
  caller: Caller;
  exposeErrors: boolean;
  maxBufferedBytes: number;
  track(c: Closable): void;
  onClose(c: Closable): void;
  /** A stream closed by a failure (a throwing `authorize`, a backend that cannot list jobs). */
  onFailure(e: unknown): void;
  /** A stream sent its snapshot: whatever failed before works again. */
  onSnapshot(): void;
}

/**
 * Streams the registry's events to one client: a snapshot of the jobs it may see, then every later
 * event of those jobs and of jobs created since that it may see, in order, with `progress` events
 * (token counts, coalesced) between them. Events of one tick go out in
 * one write; a client that reads slower than events arrive is closed past `maxBufferedBytes` (its
 * EventSource reconnects to a fresh snapshot).
 */
export function streamEvents<Req>(res: SseSink, ctx: EventStreamContext<Req>): void {
  const { access, caller } = ctx;
  let subscription: Subscription | undefined;
  let progress: Subscription | undefined;
  let closed = false;
  let early: RegistryEvent[] | undefined = [];
  let pending = '';
  const flush = (): void => {
    if (closed || pending === '') return;
    const chunk = pending;
    pending = '';
    res.write(chunk);
    if (res.buffered > ctx.maxBufferedBytes) conn.close();
  };
  const conn: Closable = {
    writeRaw: (chunk) => {
      if (closed) return;
      if (pending === '') queueMicrotask(flush);
      pending += chunk;
    },
    close: () => {
      if (closed) return;
      closed = true;
      subscription?.unsubscribe();
      progress?.unsubscribe();
      ctx.onClose(conn);
      res.end(pending);
      pending = '';
    },
  };
  const write = (e: Item): void =>
    conn.writeRaw(
      e.type === 'progress'
        ? sseEvent('progress', JSON.stringify(toWireProgress(e)))
        : sseEvent(e.type, JSON.stringify(toWireEvent(e, ctx.exposeErrors))),
    );

  // Jobs this client may see (undefined: every job). A job enters with its snapshot or its `created`
  // event, when `authorize` allows it, and leaves with its `removed` event.
  const visible = access.open ? undefined : new Set<string>();
  // Events that wait behind an asynchronous `authorize` answer, so the order holds.
  let waiting: Item[] | undefined;
  const process = (e: Item): Promise<void> | undefined => {
    if (visible === undefined) {
      write(e);
      return undefined;
    }
    if (e.type === 'created') {
      const admit = (ok: boolean): void => {
        if (!ok) return;
        visible.add(e.jobId);
        write(e);
      };
      const job = e.owner === undefined ? { id: e.jobId } : { id: e.jobId, owner: e.owner };
      const answer = access.mayNow(caller, 'events', job);
      if (typeof answer !== 'boolean') return answer.then(admit);
      admit(answer);
      return undefined;
    }
    if (!visible.has(e.jobId)) return undefined;
    write(e);
    if (e.type === 'removed') visible.delete(e.jobId);
    return undefined;
  };
  const drain = (): void => {
    while (waiting !== undefined && waiting.length > 0) {
      const later = process(waiting.shift()!);
      if (later !== undefined) return void later.then(drain, fail);
    }
    waiting = undefined;
  };
  // The client reconnects to a fresh snapshot; the handler reports the failure (once per outage).
  function fail(e: unknown): void {
    if (closed) return;
    ctx.onFailure(e);
    conn.close();
  }
  const handle = (e: Item): void => {
    if (closed) return;
    if (waiting !== undefined) return void waiting.push(e);
    const later = process(e);
    if (later !== undefined) {
      waiting = [];
      later.then(drain, fail);
    }
  };

  // The snapshot is taken before the subscription starts buffering, so events after it are not lost.
  const snapshot = ctx.registry.listJobs();
  subscription = ctx.registry.events$.subscribe({
    next: (e) => (early !== undefined ? early.push(e) : handle(e)),
    complete: () => conn.close(),
    error: fail,
  });
  // Token counts of live jobs, coalesced by the registry; the snapshot already has the counts before it.
  progress = ctx.registry.progress$.subscribe((p) => {
    if (early === undefined) handle({ type: 'progress', ...p });
  });
  res.onClose(conn);
  ctx.track(conn);
  snapshot
    .then(async (jobs) => {
      const shown: JobSnapshot[] = [];
      for (const job of jobs) if (await access.may(caller, 'events', job)) shown.push(job);
      if (closed) return;
      for (const job of shown) visible?.add(job.id);
      conn.writeRaw(
        sseEvent('snapshot', JSON.stringify(shown.map((j) => toWireSnapshot(j, ctx.exposeErrors)))),
      );
      ctx.onSnapshot();
      const since = eventsAfterSnapshot(jobs, early ?? []);
      early = undefined;
      for (const e of since) handle(e);
    })
    .catch(fail);
}

/**
 * The events that arrived while a snapshot was read, less those it already shows (events from other
 * processes may race it). A job created after the snapshot keeps every later event, its removal too.
 */
export function eventsAfterSnapshot(snapshot: JobSnapshot[], early: RegistryEvent[]): RegistryEvent[] {
  const byId = new Map(snapshot.map((j) => [j.id, j]));
  const createdSince = new Set<string>();
  return early.filter((e) => {
    if (e.type === 'created') {
      if (byId.has(e.jobId)) return false;
      createdSince.add(e.jobId);
      return true;
    }
    if (createdSince.has(e.jobId)) return true;
    const snap = byId.get(e.jobId);
    if (e.type === 'removed') return snap !== undefined;
    return !(snap !== undefined && snap.updatedAt.toMillis() >= e.at.toMillis() && snap.state === e.to);
  });
}
