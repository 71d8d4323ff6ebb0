/**
 * job-registry/client: submit a job and stream it as an Observable, in a browser or in Node. Imports
 * nothing from Node; pass an `EventSource` (e.g. the `eventsource` package) where there is no global one.
 *
 * @module job-registry/client
 */
import { Observable } from 'rxjs';
import { JobCancelledError, JobFailedError } from '../core/errors.js';
import type { TokenEvent } from '../core/types.js';
import type { WireSnapshot } from '../protocol/wire.js';
import { ClientError, errorFrom } from './errors.js';

export { JobCancelledError, JobFailedError, JobRegistryError } from '../core/errors.js';
export type { TokenEvent } from '../core/types.js';
export type { WireSnapshot } from '../protocol/wire.js';
export { ClientError } from './errors.js';

/**
 * The answer to a POST: the job's id and its stream URL as the server sent them, and both URLs resolved
 * against the URL posted to, ready to use.
 */
export interface SubmittedJob {
  /** The new job's id. */
  job_id: string;
  /** The path to GET for the job's token stream, relative to the server (it may carry a stream token). */
  sse_url: string;
  /** `sse_url` resolved against the URL posted to: pass it to {@link streamJob} as it is. */
  stream_url: string;
  /** The job's own URL (the answer's `Location`, resolved): pass it to {@link cancelJob} as it is. */
  job_url: string;
}

/** `fetch` options a caller may add (`credentials`, `mode`, `signal`, `headers`...); not `method`, `body`. */
export type FetchInit = Omit<RequestInit, 'method' | 'body'>;

/** What the client hands to `fetch`: the caller's init, with the headers merged into one record. */
export type FetchRequest = Omit<RequestInit, 'method' | 'body' | 'headers'> & {
  /** The HTTP method: `POST`, `DELETE` or `HEAD`. */
  method: string;
  /** Every header of the request, one record. */
  headers: Record<string, string>;
  /** The JSON body, when there is one. */
  body?: string;
};

/** The parts of `fetch` the client uses; `globalThis.fetch` fits. */
export type FetchLike = (
  input: string,
  init: FetchRequest,
) => Promise<{
  /** Whether the status is 2xx. */
  ok: boolean;
  /** The HTTP status. */
  status: number;
  /** The body parsed as JSON. */
  json(): Promise<unknown>;
  /** The body as text. */
  text(): Promise<string>;
  /** The answer's headers (`Location` is read from them when present). */
  headers?: {
    /** A header's value by name, or `null`. */
    get(name: string): string | null;
  };
}>;

/** Options of {@link submitJob} and {@link cancelJob}. */
export interface RequestOptions {
  /** The `fetch` to call. @defaultValue `globalThis.fetch` */
  fetch?: FetchLike;
  /**
   * Headers added to the request, e.g. `{ Authorization: 'Bearer …' }`. Names match case-insensitively;
   * these win over `init.headers`. @defaultValue none
   */
  headers?: Record<string, string>;
  /**
   * More `fetch` options, e.g. `{ credentials: 'include' }` to send cookies cross-origin. Its `headers` are
   * merged under {@link RequestOptions.headers}. @defaultValue none
   */
  init?: FetchInit;
}

/** The parts of the EventSource interface the client uses. */
export interface EventSourceLike {
  /** 0 connecting, 1 open, 2 closed (the EventSource gave up). */
  readonly readyState: number;
  /** Listens to one event type: `open`, `error`, or a named SSE event (`token`, `done`...). */
  addEventListener(type: string, listener: (event: MessageEventLike) => void): void;
  /** Closes the connection for good. */
  close(): void;
}
/** The parts of a MessageEvent the client reads. */
export interface MessageEventLike {
  /** The event's `data`, when it has one. */
  readonly data?: unknown;
  /** The event's `id` (a token's seq). */
  readonly lastEventId?: string;
}
/** The second argument of the EventSource constructor. */
export interface EventSourceInitLike {
  /** Send cookies (and HTTP auth) cross-origin. */
  withCredentials?: boolean;
}
/** A constructor compatible with the browser's EventSource. */
export type EventSourceConstructor = new (url: string, init?: EventSourceInitLike) => EventSourceLike;

/**
 * POSTs a payload as JSON and resolves with the server's answer (`job_id`, `sse_url` as sent), plus
 * `stream_url` and `job_url`: the stream's and the job's URLs resolved against `url`, for
 * {@link streamJob} and {@link cancelJob}. The request's `Content-Type` is always `application/json`,
 * whatever the headers given.
 *
 * @throws (rejects) ClientError carrying `status` and `code` for a non-2xx answer; `code` is the server's
 * (`{"error":{"code"}}`), or `HTTP_ERROR` when the body is not such an error.
 * @example
 * const job = await submitJob('https://api.example/v1/inference', { prompt: 'hi' }, {
 *   headers: { Authorization: `Bearer ${key}` },
 * });
 * streamJob<string>(job.stream_url).subscribe((t) => console.log(t.token));
 * await cancelJob(job, { headers: { Authorization: `Bearer ${key}` } });
 */
export async function submitJob(
  url: string,
  payload: unknown,
  options: RequestOptions = {},
): Promise<SubmittedJob> {
  const res = await send(url, 'POST', options, JSON.stringify(payload));
  const answer = (await res.json()) as Pick<SubmittedJob, 'job_id' | 'sse_url'>;
  const location = res.headers?.get('location') ?? undefined;
  const jobPath =
    location ?? `${url.replace(/[?#].*$/, '').replace(/\/$/, '')}/${encodeURIComponent(answer.job_id)}`;
  const posted = absolute(url);
  // A relative URL with no page to resolve it against (Node, a worker): the URLs stay relative too.
  return {
    ...answer,
    stream_url: posted === undefined ? answer.sse_url : new URL(answer.sse_url, posted).href,
    job_url: posted === undefined ? jobPath : new URL(jobPath, posted).href,
  };
}

/**
 * Cancels a job: sends `DELETE` to the job's URL and resolves with its snapshot in the wire form
 * (snake_case), now `cancelled`. `job` is what {@link submitJob} resolved with (its `job_url` is used) or
 * the job's URL (`{base}/{id}`, e.g. `https://api.example/v1/inference/job-…`). Takes the same
 * `headers` / `init` / `fetch` as {@link submitJob}.
 *
 * @throws (rejects) ClientError carrying `status` and the server's `code`: `404 JOB_NOT_FOUND` (unknown,
 * expired, or not yours), `409 JOB_TERMINAL` (it already ended), `401 UNAUTHENTICATED`...
 * @example
 * const job = await submitJob('https://api.example/v1/inference', { prompt: 'hi' });
 * await cancelJob(job, { init: { credentials: 'include' } });
 */
export async function cancelJob(
  job: string | Pick<SubmittedJob, 'job_url'>,
  options: RequestOptions = {},
): Promise<WireSnapshot> {
  const res = await send(typeof job === 'string' ? job : job.job_url, 'DELETE', options);
  return (await res.json()) as WireSnapshot;
}

/** `url` as an absolute URL (against the page's location in a browser), or `undefined` when it cannot be. */
function absolute(url: string): URL | undefined {
  try {
    return new URL(url, (globalThis as { location?: { href?: string } }).location?.href);
  } catch {
    // A relative URL and no page location: the caller keeps relative URLs.
    return undefined;
  }
}

async function send(
  url: string,
  method: string,
  options: RequestOptions,
  body?: string,
): Promise<Awaited<ReturnType<FetchLike>>> {
  const doFetch = options.fetch ?? (globalThis.fetch as unknown as FetchLike | undefined);
  if (doFetch === undefined)
    throw new ClientError('job-registry: no fetch available; pass { fetch }', undefined, 'NO_FETCH');
  const forced: Record<string, string> = body === undefined ? {} : { 'Content-Type': 'application/json' };
  const headers = mergeHeaders(
    { Accept: 'application/json' },
    options.init?.headers,
    options.headers,
    forced,
  );
  const init: FetchRequest = { ...options.init, method, headers };
  if (body !== undefined) init.body = body;
  const res = await doFetch(url, init);
  if (!res.ok) throw await errorFrom(res);
  return res;
}

/** Merges header sources left to right; a later name replaces an earlier one whatever its case. */
function mergeHeaders(...sources: (HeadersInit | undefined)[]): Record<string, string> {
  const out = new Map<string, [string, string]>();
  const put = (name: string, value: string): void => void out.set(name.toLowerCase(), [name, value]);
  for (const source of sources) {
    if (source === undefined) continue;
    if (Array.isArray(source)) {
      for (const pair of source as string[][]) {
        if (pair.length !== 2) throw new TypeError('job-registry: a header pair must be [name, value]');
        put(pair[0]!, pair[1]!);
      }
    } else if (typeof (source as Headers).forEach === 'function') {
      (source as Headers).forEach((value, name) => put(name, value));
    } else {
      for (const [name, value] of Object.entries(source as Record<string, string>)) put(name, value);
    }
  }
  return Object.fromEntries(out.values());
}

/** Options of {@link streamJob}. */
export interface StreamJobOptions<T> {
  /** Resume after this seq. @defaultValue the start */
  after?: number;
  /** The EventSource class. @defaultValue `globalThis.EventSource` */
  EventSource?: EventSourceConstructor;
  /** `data` of a token event to a token. @defaultValue `JSON.parse` */
  parse?: (data: string) => T;
  /**
   * Passed to the EventSource as `{ withCredentials: true }`, so a browser sends cookies to another origin
   * (the server must answer CORS with credentials). @defaultValue `false`
   */
  withCredentials?: boolean;
  /**
   * Used only to learn why a stream was refused when the EventSource does not say (a browser's): one `HEAD`
   * request to the stream URL. @defaultValue `globalThis.fetch`
   */
  fetch?: FetchLike;
}

/**
 * Streams a job's tokens as an Observable.
 *
 * - Completes on the `done` event; errors with `JobFailedError` / `JobCancelledError` on the terminal `error`
 *   event. The connection is closed at the terminal event and never resumed; whatever the EventSource
 *   reports after it (such as the `204` a resume at the terminal event's own id gets) is ignored.
 * - After a dropped connection the EventSource reconnects by itself with `Last-Event-ID` (the URL, query and
 *   any stream token in it, unchanged); tokens at or before the last seq seen are dropped, so there is no
 *   duplicate and, as the server resumes right after that seq, no gap.
 * - A busy or unavailable server (429, 502, 503, 504) is asked again after a pause (250 ms doubling up to
 *   2 s, 20 times at most), with `after=<last seq>` set in the URL's query; its other parameters, such as
 *   a signed `token`, are kept.
 * - Any other refusal, on the first connection or on a reconnect, errors with a `ClientError`, code
 *   `STREAM_REFUSED` and `status` the HTTP status: 401/403 (not authorized: an expired stream token, or
 *   cookies not sent; see `withCredentials`), 404 (unknown job, or not yours), 410 (the resume point is no
 *   longer kept), 400. A `204` before any terminal event (`after` was the terminal event's own id, so the
 *   end was delivered before) errors with code `STREAM_ENDED`, status 204.
 * - The status is known from the `eventsource` package (its error event's `code`). A browser's EventSource
 *   does not expose it: the client then sends one `HEAD` to the stream URL (with cookies when
 *   `withCredentials`) and acts on that answer as above (a `200` there: asked again). When that request
 *   fails too (no `fetch`, a network or CORS failure), the error is `STREAM_REFUSED` with `status`
 *   undefined.
 *
 * Unsubscribing closes the connection.
 *
 * @example
 * streamJob<string>(`https://api.example${sse_url}`, { withCredentials: true }).subscribe({
 *   next: ({ seq, token }) => render(seq, token),
 *   error: (e) => console.error(e.code, e.message), // JOB_FAILED, JOB_CANCELLED, STREAM_REFUSED...
 * });
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
    let es: EventSourceLike | undefined;
    // Set once the Observable ends (terminal event, refusal, bad data, unsubscribe): from then on no event of
    // any connection counts, so a late `error` (such as a 204 on a resume at the terminal event's id) is not
    // reported, and nothing reconnects.
    let ended = false;
    let retries = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const end = (notify: () => void): void => {
      ended = true;
      if (timer !== undefined) clearTimeout(timer);
      es?.close();
      notify();
    };
    const target = (): string =>
      last < 0 && options.after === undefined ? url : withQuery(url, 'after', String(last));
    // `again`: worth asking again (busy or unavailable; or, learned by a probe, available now).
    const refused = (status: number | undefined, again: boolean): void => {
      if (ended) return;
      if (again && retries < MAX_RETRIES) {
        timer = setTimeout(open, Math.min(2000, 250 * 2 ** retries++));
        return;
      }
      end(() => sub.error(refusal(jobId, last, status)));
    };
    const open = (): void => {
      timer = undefined;
      let source: EventSourceLike;
      try {
        source =
          options.withCredentials === true ? new ES(target(), { withCredentials: true }) : new ES(target());
      } catch (e) {
        end(() => sub.error(e));
        return;
      }
      es = source;
      const current = (): boolean => !ended && es === source;
      source.addEventListener('open', () => {
        if (current()) retries = 0;
      });
      source.addEventListener('token', (ev) => {
        if (!current()) return;
        retries = 0;
        const seq = Number(ev.lastEventId);
        if (!Number.isInteger(seq) || seq <= last) return; // a duplicate after a resume
        last = seq;
        let token: T;
        try {
          token = parse(String(ev.data));
        } catch (e) {
          end(() => sub.error(e));
          return;
        }
        sub.next({ seq, token });
      });
      source.addEventListener('done', () => {
        if (current()) end(() => sub.complete());
      });
      source.addEventListener('error', (ev) => {
        if (!current()) return;
        if (typeof ev.data === 'string') {
          // The job's terminal event.
          const data = ev.data;
          end(() => sub.error(terminalError(jobId, data)));
          return;
        }
        // Still CONNECTING: the connection dropped and the EventSource reconnects with Last-Event-ID.
        if (source.readyState !== CLOSED) return;
        // CLOSED: the server refused to (re)open the stream.
        source.close();
        const status = (ev as { code?: unknown }).code;
        if (typeof status === 'number') return refused(status, TRANSIENT.has(status));
        const probe = options.fetch ?? (globalThis.fetch as unknown as FetchLike | undefined);
        if (probe === undefined) return refused(undefined, false);
        void statusOf(probe, target(), options.withCredentials === true).then((s) =>
          refused(s, s !== undefined && (s === 200 || TRANSIENT.has(s))),
        );
      });
    };
    open();
    return () => {
      ended = true;
      if (timer !== undefined) clearTimeout(timer);
      es?.close();
    };
  });
}

const CLOSED = 2;
const TRANSIENT = new Set([429, 502, 503, 504]);
const MAX_RETRIES = 20;

/** The status of a `HEAD` to a stream URL, or undefined when it cannot be had (network, CORS, no HEAD). */
async function statusOf(
  doFetch: FetchLike,
  url: string,
  withCredentials: boolean,
): Promise<number | undefined> {
  try {
    const init: FetchRequest = {
      method: 'HEAD',
      headers: { Accept: 'text/event-stream' },
      cache: 'no-store',
    };
    if (withCredentials) init.credentials = 'include';
    const { status } = await doFetch(url, init);
    return status === 405 || status === 501 ? undefined : status;
  } catch {
    return undefined; // a network or CORS failure says nothing about the stream
  }
}

function terminalError(jobId: string, data: string): JobFailedError | JobCancelledError {
  let body: { state?: string; error?: string } = {};
  try {
    body = JSON.parse(data) as typeof body;
  } catch {
    body = { error: data };
  }
  const message = body.error ?? 'job ended';
  return body.state === 'cancelled'
    ? new JobCancelledError(jobId, message)
    : new JobFailedError(jobId, message);
}

function refusal(jobId: string, last: number, status: number | undefined): ClientError {
  const stream = `job-registry: the stream of '${jobId}'`;
  const at = last < 0 ? '' : ` after seq ${last}`;
  if (status === 204)
    return new ClientError(
      `${stream} already ended: seq ${last} is its terminal event's id, so the end was already delivered; ` +
        `GET the job for its final state`,
      204,
      'STREAM_ENDED',
    );
  const why =
    status === undefined
      ? 'was refused, and its status could not be learned (the EventSource does not expose it): ' +
        'unknown job, not authorized, or the resume point is no longer kept'
      : status === 401 || status === 403
        ? `was refused (${status}): not authorized; a stream token in the URL may have expired ` +
          `(ask the server for a fresh sse_url), or cookies were not sent (pass withCredentials)`
        : status === 404
          ? 'was refused (404): no such job (it may have expired after its retention, or be someone else’s)'
          : status === 410
            ? `was refused (410): the server no longer keeps the tokens${at}`
            : `was refused (${status})${at}`;
  return new ClientError(`${stream} ${why}`, status, 'STREAM_REFUSED');
}

/** What {@link watchEvents} emits: the job list first, then each registry event. */
export type WatchedEvent =
  | {
      /** The first event of each connection: every job the caller may see. */
      type: 'snapshot';
      /** Those jobs. */
      jobs: WireJob[];
    }
  | {
      /** What happened to the job. */
      type: 'created' | 'stateChanged' | 'removed';
      /** The job's id. */
      job_id: string;
      /** The state it left (`stateChanged`). */
      from?: string;
      /** The state it entered (`stateChanged`). */
      to?: string;
      /** Why it failed or was cancelled, when it says. */
      error?: string;
      /** When it happened (ISO 8601). */
      at: string;
    }
  | {
      /** A live job's token count (coalesced: a few per second per job at most). */
      type: 'progress';
      /** The job's id. */
      job_id: string;
      /** Its tokens so far. */
      token_count: number;
      /** When it was counted (ISO 8601). */
      at: string;
    };

/** A job as the server's JSON describes it. */
export type WireJob = WireSnapshot;

/**
 * Watches `/v1/events` as an Observable: a `snapshot` of every job, then `created`, `stateChanged`,
 * `removed` and `progress` (token counts) events. After a dropped connection the server sends a fresh snapshot.
 * `withCredentials` (default `false`) is passed to the EventSource as in {@link streamJob}.
 */
export function watchEvents(
  url: string,
  options: { EventSource?: EventSourceConstructor; withCredentials?: boolean } = {},
): Observable<WatchedEvent> {
  const ES = options.EventSource ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource;
  return new Observable<WatchedEvent>((sub) => {
    if (ES === undefined) return sub.error(noEventSource());
    const es = options.withCredentials === true ? new ES(url, { withCredentials: true }) : new ES(url);
    es.addEventListener('snapshot', (ev) =>
      sub.next({ type: 'snapshot', jobs: JSON.parse(String(ev.data)) as WireJob[] }),
    );
    for (const type of ['created', 'stateChanged', 'removed'] as const) {
      es.addEventListener(type, (ev) =>
        sub.next({ type, ...(JSON.parse(String(ev.data)) as { job_id: string; at: string }) }),
      );
    }
    es.addEventListener('progress', (ev) =>
      sub.next({
        type: 'progress',
        ...(JSON.parse(String(ev.data)) as { job_id: string; token_count: number; at: string }),
      }),
    );
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

/** `url` with `key=value` in its query: other parameters (a signed `token`) kept, an old `key` replaced. */
function withQuery(url: string, key: string, value: string): string {
  const hash = url.indexOf('#');
  const fragment = hash < 0 ? '' : url.slice(hash);
  const bare = hash < 0 ? url : url.slice(0, hash);
  const q = bare.indexOf('?');
  const path = q < 0 ? bare : bare.slice(0, q);
  const params = q < 0 ? [] : bare.slice(q + 1).split('&');
  const kept = params.filter((p) => p !== '' && decodeName(p.split('=')[0]!) !== key);
  return `${path}?${[...kept, `${key}=${encodeURIComponent(value)}`].join('&')}${fragment}`;
}

function decodeName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}

function jobIdOf(url: string): string {
  const m = /\/([^/?#]+)\/stream(?:[?#]|$)/.exec(url);
  return m === null ? url : decodeURIComponent(m[1]!);
}
