/**
 * job-registry/client: submit a job and stream it as an Observable, in a browser or in Node. Imports
 * nothing from Node; pass an `EventSource` (e.g. the `eventsource` package) where there is no global one.
 */
import { Observable } from 'rxjs';
import { JobCancelledError, JobFailedError } from '../core/errors.js';
import type { TokenEvent } from '../core/types.js';
import type { WireSnapshot } from '../http/wire.js';

export { JobCancelledError, JobFailedError, JobRegistryError } from '../core/errors.js';
export type { TokenEvent } from '../core/types.js';

/** The answer to a POST: the job's id and its stream URL, relative to the server. */
export interface SubmittedJob {
  job_id: string;
  sse_url: string;
}

/** A non-2xx answer or a stream the server refused; `status` is the HTTP status when known. */
export class ClientError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly code: string,
  ) {
    super(message);
    this.name = 'ClientError';
  }
}

type FetchLike = (
  input: string,
  init?: { method?: string; headers?: Record<string, string>; body?: string },
) => Promise<{
  ok: boolean;
  status: number;
  json(): Promise<unknown>;
  text(): Promise<string>;
}>;

/** The parts of the EventSource interface the client uses. */
export interface EventSourceLike {
  readonly readyState: number;
  addEventListener(type: string, listener: (event: MessageEventLike) => void): void;
  close(): void;
}
/** The parts of a MessageEvent the client reads. */
export interface MessageEventLike {
  readonly data?: unknown;
  readonly lastEventId?: string;
}
/** A constructor compatible with the browser's EventSource. */
export type EventSourceConstructor = new (url: string) => EventSourceLike;

/**
 * POSTs a payload and resolves with the server's answer as sent.
 *
 * @throws (rejects) ClientError carrying `status` and `code` for a non-2xx answer.
 * @example
 * const { job_id, sse_url } = await submitJob('http://127.0.0.1:8080/v1/inference', { prompt: 'hi' });
 */
export async function submitJob(
  url: string,
  payload: unknown,
  options: { fetch?: FetchLike } = {},
): Promise<SubmittedJob> {
  const doFetch = options.fetch ?? (globalThis.fetch as unknown as FetchLike | undefined);
  if (doFetch === undefined)
    throw new ClientError('job-registry: no fetch available; pass { fetch }', undefined, 'NO_FETCH');
  const res = await doFetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify(payload),
  });
  if (!res.ok) throw await errorFrom(res);
  return (await res.json()) as SubmittedJob;
}

/**
 * GETs a job's JSON snapshot (`GET {base}/{id}`) or sends `DELETE` to cancel it.
 *
 * @throws (rejects) ClientError for a non-2xx answer.
 */
export async function cancelJob(jobUrl: string, options: { fetch?: FetchLike } = {}): Promise<unknown> {
  const doFetch = options.fetch ?? (globalThis.fetch as unknown as FetchLike);
  const res = await doFetch(jobUrl, { method: 'DELETE' });
  if (!res.ok) throw await errorFrom(res);
  return res.json();
}

async function errorFrom(res: { status: number; text(): Promise<string> }): Promise<ClientError> {
  let code = 'HTTP_ERROR';
  let message = `job-registry: the server answered ${res.status}`;
  try {
    const body = JSON.parse(await res.text()) as { error?: { code?: string; message?: string } };
    if (typeof body.error?.code === 'string') code = body.error.code;
    if (typeof body.error?.message === 'string') message = body.error.message;
  } catch {
    // a body that is not our JSON error: keep the status alone
  }
  return new ClientError(message, res.status, code);
}

/** Options of {@link streamJob}. */
export interface StreamJobOptions<T> {
  /** Resume after this seq. Defaults to the start. */
  after?: number;
  /** The EventSource class. Defaults to `globalThis.EventSource`. */
  EventSource?: EventSourceConstructor;
  /** `data` of a token event to a token. Defaults to `JSON.parse`. */
  parse?: (data: string) => T;
}

/**
 * Streams a job's tokens. Completes on `done`; errors with `JobFailedError` / `JobCancelledError` on the
 * terminal `error` event, or a `ClientError` when the server refuses the stream. After a dropped
 * connection it reconnects and resumes after the last seq seen, dropping duplicates. Unsubscribing
 * closes the connection.
 */
export function streamJob<T = unknown>(
  url: string,
  options: StreamJobOptions<T> = {},
): Observable<TokenEvent<T>> {
  const ES = options.EventSource ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource;
  const parse = options.parse ?? ((d: string) => JSON.parse(d) as T);
  return new Observable<TokenEvent<T>>((sub) => {
    if (ES === undefined) return sub.error(noEventSource());
    let last = options.after ?? -1;
    const jobId = jobIdOf(url);
    let es: EventSourceLike;
    let retries = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const open = (): void => {
      const target = last < 0 && options.after === undefined ? url : withQuery(url, 'after', String(last));
      es = new ES(target);
      es.addEventListener('token', (ev) => {
        retries = 0;
        const seq = Number(ev.lastEventId);
        if (!Number.isInteger(seq) || seq <= last) return; // a duplicate after a resume
        last = seq;
        let token: T;
        try {
          token = parse(String(ev.data));
        } catch (e) {
          es.close();
          sub.error(e);
          return;
        }
        sub.next({ seq, token });
      });
      es.addEventListener('done', () => {
        es.close();
        sub.complete();
      });
      es.addEventListener('error', (ev) => {
        if (typeof ev.data === 'string') {
          // The job's terminal event.
          es.close();
          let body: { state?: string; error?: string } = {};
          try {
            body = JSON.parse(ev.data) as typeof body;
          } catch {
            body = { error: ev.data };
          }
          const message = body.error ?? 'job ended';
          sub.error(
            body.state === 'cancelled'
              ? new JobCancelledError(jobId, message)
              : new JobFailedError(jobId, message),
          );
        } else if (es.readyState === 2) {
          // The server refused to (re)open the stream. A busy or unavailable server (429, 502-504, as
          // the `eventsource` package reports in `code`) is asked again after a pause; anything else
          // (unknown job, the resume point expired) is final.
          const status = (ev as { code?: unknown }).code;
          if (typeof status === 'number' && TRANSIENT.has(status) && retries < MAX_RETRIES) {
            timer = setTimeout(open, Math.min(2000, 250 * 2 ** retries++));
            return;
          }
          sub.error(
            new ClientError(
              `job-registry: the stream of '${jobId}' was refused (unknown job, or seq ${last} is no longer kept)`,
              typeof status === 'number' ? status : undefined,
              'STREAM_REFUSED',
            ),
          );
        }
        // Otherwise the connection dropped and the EventSource reconnects with Last-Event-ID.
      });
    };
    open();
    return () => {
      if (timer !== undefined) clearTimeout(timer);
      es.close();
    };
  });
}

const TRANSIENT = new Set([429, 502, 503, 504]);
const MAX_RETRIES = 20;

/** What {@link watchEvents} emits: the job list first, then each registry event. */
export type WatchedEvent =
  | { type: 'snapshot'; jobs: WireJob[] }
  | {
      type: 'created' | 'stateChanged' | 'removed';
      job_id: string;
      from?: string;
      to?: string;
      error?: string;
      at: string;
    };

/** A job as the server's JSON describes it. */
export type WireJob = WireSnapshot;

/**
 * Watches `/v1/events` as an Observable: a `snapshot` of every job, then `created`, `stateChanged` and
 * `removed` events. After a dropped connection the server sends a fresh snapshot.
 */
export function watchEvents(
  url: string,
  options: { EventSource?: EventSourceConstructor } = {},
): Observable<WatchedEvent> {
  const ES = options.EventSource ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource;
  return new Observable<WatchedEvent>((sub) => {
    if (ES === undefined) return sub.error(noEventSource());
    const es = new ES(url);
    es.addEventListener('snapshot', (ev) =>
      sub.next({ type: 'snapshot', jobs: JSON.parse(String(ev.data)) as WireJob[] }),
    );
    for (const type of ['created', 'stateChanged', 'removed'] as const) {
      es.addEventListener(type, (ev) =>
        sub.next({ type, ...(JSON.parse(String(ev.data)) as { job_id: string; at: string }) }),
      );
    }
    return () => es.close();
  });
}

function noEventSource(): ClientError {
  return new ClientError(
    'job-registry: no EventSource available; pass { EventSource }',
    undefined,
    'NO_EVENTSOURCE',
  );
}

function withQuery(url: string, key: string, value: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}${key}=${encodeURIComponent(value)}`;
}

function jobIdOf(url: string): string {
  const m = /\/([^/?#]+)\/stream(?:[?#]|$)/.exec(url);
  return m === null ? url : decodeURIComponent(m[1]!);
}
