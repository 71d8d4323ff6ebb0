import { EventSource, type EventSourceInit } from 'eventsource';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Observable, interval, map, take } from 'rxjs';
import {
  ClientError,
  JobCancelledError,
  JobFailedError,
  cancelJob,
  streamJob,
  submitJob,
  watchEvents,
  type EventSourceConstructor,
  type EventSourceInitLike,
  type EventSourceLike,
  type FetchLike,
  type FetchRequest,
  type MessageEventLike,
} from '../../src/client/index.js';
import { PublicError } from '../../src/core/index.js';
import { collect, sleep, waitFor } from '../helpers/collect.js';
import { startProxy, startTestServer, type TestServer } from '../helpers/http.js';

const ES = EventSource as unknown as EventSourceConstructor;
type Payload = { n: number; every?: number; fail?: boolean; hang?: boolean };
const counter = (p: Payload | undefined) =>
  p!.hang
    ? new Observable<string>(() => undefined)
    : interval(p!.every ?? 1).pipe(
        take(p!.n),
        map((i) => {
          // Public: the server sends its message to clients instead of the redacted "job failed".
          if (p!.fail && i === p!.n - 1) throw new PublicError('gpu fell over');
          return `t${i}`;
        }),
      );

let srv: TestServer<string, Payload>;
beforeEach(async () => {
  srv = await startTestServer<string, Payload>({ execute: counter, retryMs: 20 });
});
afterEach(async () => {
  await srv.close();
});

test('submitJob resolves with the answer as sent; a refusal rejects with status and code', async () => {
  const job = await submitJob(`${srv.url}/v1/inference`, { n: 1 });
  expect(job.sse_url).toBe(`/v1/inference/${job.job_id}/stream`);
  const refused = await submitJob(`${srv.url}/v1/jobs`, { n: 1 }).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(ClientError);
  expect(refused).toMatchObject({ status: 405, code: 'METHOD_NOT_ALLOWED' });
});

test('submitJob with a relative URL and no page to resolve it against keeps the URLs relative', async () => {
  const fetch: FetchLike = async () => ({
    ok: true,
    status: 202,
    json: async () => ({ job_id: 'job-1', sse_url: '/v1/inference/job-1/stream' }),
    text: async () => '',
    headers: { get: (name: string) => (name.toLowerCase() === 'location' ? '/v1/inference/job-1' : null) },
  });
  const job = await submitJob('/v1/inference', { n: 1 }, { fetch });
  expect(job).toEqual({
    job_id: 'job-1',
    sse_url: '/v1/inference/job-1/stream',
    stream_url: '/v1/inference/job-1/stream',
    job_url: '/v1/inference/job-1',
  });
});

test('submitJob also resolves the stream and job URLs against the URL posted to; cancelJob takes the job', async () => {
  const job = await submitJob(`${srv.url}/v1/inference`, { n: 1, hang: true });
  expect(job.stream_url).toBe(`${srv.url}/v1/inference/${job.job_id}/stream`);
  expect(job.job_url).toBe(`${srv.url}/v1/inference/${job.job_id}`);
  const seen = collect(streamJob<string>(job.stream_url, { EventSource: ES }));
  await waitFor(() => srv.registry.getJobState(job.job_id) === 'running');
  const snap = await cancelJob(job);
  expect(snap).toMatchObject({ job_id: job.job_id, state: 'cancelled' });
  await seen.done;
  expect(seen.error).toBeInstanceOf(JobCancelledError);
});

test('submitJob resolves the URLs under a prefix the server reports (publicBasePath)', async () => {
  const prefixed = await startTestServer<string, Payload>({
    execute: counter,
    publicBasePath: '/api/v1/inference',
  });
  try {
    const job = await submitJob(`${prefixed.url}/v1/inference`, { n: 1 });
    expect(job.stream_url).toBe(`${prefixed.url}/api/v1/inference/${job.job_id}/stream`);
    expect(job.job_url).toBe(`${prefixed.url}/api/v1/inference/${job.job_id}`);
  } finally {
    await prefixed.close();
  }
});

test('streamJob streams to completion with JSON.parse by default', async () => {
  const job = await submitJob(`${srv.url}/v1/inference`, { n: 5 });
  const c = collect(streamJob<string>(srv.url + job.sse_url, { EventSource: ES }));
  await c.done;
  expect(c.completed).toBe(true);
  expect(c.values).toEqual([0, 1, 2, 3, 4].map((i) => ({ seq: i, token: `t${i}` })));
});

test('streamJob errors with JobFailedError / JobCancelledError on the terminal error event', async () => {
  const failed = await submitJob(`${srv.url}/v1/inference`, { n: 3, fail: true });
  const f = collect(streamJob<string>(srv.url + failed.sse_url, { EventSource: ES }));
  await f.done;
  expect(f.error).toBeInstanceOf(JobFailedError);
  expect((f.error as Error).message).toBe('gpu fell over');
  expect(f.values).toHaveLength(2);

  const hung = await submitJob(`${srv.url}/v1/inference`, { n: 0, hang: true });
  const c = collect(streamJob<string>(srv.url + hung.sse_url, { EventSource: ES }));
  await waitFor(() => srv.handler.connections === 1, 3000, 'stream open');
  await srv.registry.cancel(hung.job_id, 'user stop');
  await c.done;
  expect(c.error).toBeInstanceOf(JobCancelledError);
  expect((c.error as Error).message).toBe('user stop');
});

test('streamJob refuses an unknown job with a ClientError instead of reconnecting forever', async () => {
  const c = collect(streamJob(`${srv.url}/v1/inference/job-none/stream`, { EventSource: ES }));
  await c.done;
  expect(c.error).toBeInstanceOf(ClientError);
  expect(c.error).toMatchObject({ code: 'STREAM_REFUSED', status: 404 });
});

test('a connection cut mid-stream by a proxy resumes after the last seq: no gap, no duplicate', async () => {
  const proxy = await startProxy(srv.port);
  try {
    const job = await submitJob(`${srv.url}/v1/inference`, { n: 300, every: 2 });
    const c = collect(streamJob<string>(`http://127.0.0.1:${proxy.port}${job.sse_url}`, { EventSource: ES }));
    await waitFor(() => c.values.length >= 30, 5000, 'first tokens');
    proxy.cutAll();
    const atCut = c.values.length;
    await waitFor(() => c.values.length >= atCut + 30, 5000, 'tokens after reconnect');
    proxy.cutAll();
    await c.done;
    expect(c.completed).toBe(true);
    expect(c.values.map((v) => v.seq)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(c.values.map((v) => v.token)).toEqual(Array.from({ length: 300 }, (_, i) => `t${i}`));
  } finally {
    await proxy.close();
  }
});

test('after resumes a stream; unsubscribe closes the connection and the job goes on', async () => {
  const job = await submitJob(`${srv.url}/v1/inference`, { n: 1000, every: 5 });
  // A resume point the job has not reached yet is refused (RESUME_AHEAD), so wait until it has.
  await waitFor(() => (srv.registry.getJob(job.job_id)?.tokenCount ?? 0) >= 4, 3000, 'seq 3');
  const c = collect(streamJob<string>(srv.url + job.sse_url, { EventSource: ES, after: 3 }));
  await waitFor(() => c.values.length >= 2, 5000, 'tokens');
  expect(c.values[0]!.seq).toBe(4);
  c.unsubscribe();
  await waitFor(() => srv.handler.connections === 0, 3000, 'connection closed');
  expect(srv.registry.getJobState(job.job_id)).toBe('running');
});

test('watchEvents gives a snapshot then live events', async () => {
  const existing = srv.registry.createJob();
  const c = collect(watchEvents(`${srv.url}/v1/events`, { EventSource: ES }));
  await waitFor(() => c.values.length >= 1, 3000, 'snapshot');
  const job = await submitJob(`${srv.url}/v1/inference`, { n: 2 });
  await waitFor(
    () => c.values.some((e) => e.type === 'stateChanged' && e.to === 'completed'),
    3000,
    'completed',
  );
  c.unsubscribe();
  expect(c.values[0]).toMatchObject({
    type: 'snapshot',
    jobs: [expect.objectContaining({ job_id: existing, state: 'queued' })],
  });
  expect(c.values.slice(1).map((e) => [e.type, 'job_id' in e ? e.job_id : ''])).toContainEqual([
    'created',
    job.job_id,
  ]);
});

test('streamJob asks again after a 503 (a replica without its backend) and resumes after the last seq', async () => {
  const { createServer } = await import('node:http');
  const seen: string[] = [];
  let refusals = 2;
  const server = createServer((req, res) => {
    seen.push(req.url ?? '');
    if (refusals-- > 0) {
      res.writeHead(503, { 'Content-Type': 'application/json' });
      res.end('{"error":{"code":"BACKEND_ERROR","message":"down"}}');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    res.end('id: 3\nevent: token\ndata: "d"\n\nid: 4\nevent: done\ndata: {"state":"completed"}\n\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  try {
    const r = collect(
      streamJob<string>(`http://127.0.0.1:${port}/v1/inference/job-x/stream`, { EventSource: ES, after: 2 }),
    );
    await r.done;
    expect(r.completed).toBe(true);
    expect(r.values).toEqual([{ seq: 3, token: 'd' }]);
    expect(seen).toHaveLength(3);
    expect(seen.every((u) => u.endsWith('?after=2'))).toBe(true);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

// ---------------------------------------------------------------- scripted servers

/** A request as a scripted server saw it. */
interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

/** A plain HTTP server on port 0 that records every request and answers as `answer` says. */
interface Scripted {
  url: string;
  seen: Seen[];
  close(): Promise<void>;
}

const scriptedServers: Scripted[] = [];
afterEach(async () => {
  await Promise.all(scriptedServers.splice(0).map((s) => s.close()));
});

async function scripted(
  answer: (req: IncomingMessage, res: ServerResponse, n: number) => void,
): Promise<Scripted> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    answer(req, res, seen.length - 1);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const s: Scripted = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
  scriptedServers.push(s);
  return s;
}

/** Answers 200 with an SSE body, then ends the response. */
function sse(res: ServerResponse, body: string): void {
  res.writeHead(200, { 'Content-Type': 'text/event-stream' });
  res.end(body);
}

/** Answers with the server's JSON error body. */
function refuse(res: ServerResponse, status: number, code: string): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ error: { code, message: `refused with ${code}` } }));
}

const token = (seq: number, t: string): string => `id: ${seq}\nevent: token\ndata: ${JSON.stringify(t)}\n\n`;
const query = (u: string): URLSearchParams => new URL(u, 'http://x').searchParams;

// ---------------------------------------------------------------- headers, init, cancelJob

test('submitJob and cancelJob send the given headers and fetch init; Content-Type stays application/json', async () => {
  const seen: Seen[] = [];
  srv.server.prependListener('request', (req: IncomingMessage) =>
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers }),
  );
  const inits: FetchRequest[] = [];
  const spy: FetchLike = (input, init) => {
    inits.push(init);
    return fetch(input, init);
  };
  const job = await submitJob(
    `${srv.url}/v1/inference`,
    { n: 0, hang: true },
    {
      fetch: spy,
      headers: { Authorization: 'Bearer abc', 'X-Dup': 'from headers', 'content-type': 'text/plain' },
      init: { credentials: 'include', headers: { 'X-From-Init': 'yes', 'x-dup': 'from init' } },
    },
  );
  expect(srv.registry.hasJob(job.job_id)).toBe(true);
  const post = seen.find((r) => r.method === 'POST')!;
  expect(post.headers).toMatchObject({
    authorization: 'Bearer abc',
    'x-from-init': 'yes',
    'x-dup': 'from headers',
    'content-type': 'application/json',
    accept: 'application/json',
  });
  expect(inits[0]).toMatchObject({ method: 'POST', credentials: 'include' });

  await cancelJob(`${srv.url}/v1/inference/${job.job_id}`, {
    fetch: globalThis.fetch,
    headers: { Authorization: 'Bearer xyz' },
    init: { headers: new Headers({ 'X-From-Init': 'a Headers object' }) },
  });
  const del = seen.find((r) => r.method === 'DELETE')!;
  expect(del.url).toBe(`/v1/inference/${job.job_id}`);
  expect(del.headers).toMatchObject({ authorization: 'Bearer xyz', 'x-from-init': 'a Headers object' });
});

test('cancelJob resolves the wire snapshot on 200, and rejects with ClientError on 404 and 409', async () => {
  const job = await submitJob(`${srv.url}/v1/inference`, { n: 0, hang: true });
  const jobUrl = `${srv.url}/v1/inference/${job.job_id}`;
  const snap = await cancelJob(jobUrl);
  expect(snap).toMatchObject({ job_id: job.job_id, state: 'cancelled', token_count: 0 });
  expect(typeof snap.created_at).toBe('string');
  expect(srv.registry.getJobState(job.job_id)).toBe('cancelled');

  const again = await cancelJob(jobUrl).catch((e: unknown) => e);
  expect(again).toBeInstanceOf(ClientError);
  expect(again).toMatchObject({ status: 409, code: 'JOB_TERMINAL' });

  const unknown = await cancelJob(`${srv.url}/v1/inference/job-none`).catch((e: unknown) => e);
  expect(unknown).toBeInstanceOf(ClientError);
  expect(unknown).toMatchObject({ status: 404, code: 'JOB_NOT_FOUND' });
});

test("cancelJob's ClientError carries the server's code and message, or HTTP_ERROR for another body", async () => {
  const s = await scripted((_req, res, n) => {
    if (n === 0) return refuse(res, 401, 'UNAUTHENTICATED');
    res.writeHead(502, { 'Content-Type': 'text/html' });
    res.end('<h1>Bad gateway</h1>');
  });
  const denied = await cancelJob(`${s.url}/v1/inference/job-x`).catch((e: unknown) => e);
  expect(denied).toBeInstanceOf(ClientError);
  expect(denied).toMatchObject({
    status: 401,
    code: 'UNAUTHENTICATED',
    message: 'refused with UNAUTHENTICATED',
  });
  const proxy = await cancelJob(`${s.url}/v1/inference/job-x`).catch((e: unknown) => e);
  expect(proxy).toMatchObject({ status: 502, code: 'HTTP_ERROR' });
  expect(s.seen.map((r) => r.method)).toEqual(['DELETE', 'DELETE']);
});

// ---------------------------------------------------------------- streams: credentials, query, terminal id

test('withCredentials is passed to the EventSource constructor by streamJob and watchEvents', async () => {
  const made: { init: EventSourceInit | undefined; args: number; withCredentials: boolean }[] = [];
  class RecordingEventSource extends EventSource {
    constructor(...args: [string, EventSourceInit?]) {
      super(...args);
      made.push({ init: args[1], args: args.length, withCredentials: this.withCredentials });
    }
  }
  const RES = RecordingEventSource as unknown as EventSourceConstructor;
  const job = await submitJob(`${srv.url}/v1/inference`, { n: 2 });
  const c = collect(streamJob<string>(srv.url + job.sse_url, { EventSource: RES, withCredentials: true }));
  await c.done;
  expect(c.values.map((v) => v.token)).toEqual(['t0', 't1']);
  expect(made[0]).toEqual({ init: { withCredentials: true }, args: 2, withCredentials: true });

  const plain = collect(streamJob<string>(srv.url + job.sse_url, { EventSource: RES }));
  await plain.done;
  expect(made[1]).toEqual({ init: undefined, args: 1, withCredentials: false });

  const w = collect(watchEvents(`${srv.url}/v1/events`, { EventSource: RES, withCredentials: true }));
  await waitFor(() => w.values.length >= 1, 3000, 'snapshot');
  w.unsubscribe();
  expect(made[2]).toEqual({ init: { withCredentials: true }, args: 2, withCredentials: true });
});

test('a stream URL with a signed ?token= keeps it on every reconnect; the after= the client sets goes beside it', async () => {
  const s = await scripted((_req, res, n) => {
    if (n === 0) return sse(res, `retry: 10\n\n${token(0, 'a')}${token(1, 'b')}`); // then the connection ends
    if (n === 1) return refuse(res, 503, 'DRAINING');
    sse(res, `${token(2, 'c')}id: 3\nevent: done\ndata: {"state":"completed"}\n\n`);
  });
  const c = collect(streamJob<string>(`${s.url}/v1/inference/job-x/stream?token=x%2By`, { EventSource: ES }));
  await c.done;
  expect(c.completed).toBe(true);
  expect(c.values).toEqual([
    { seq: 0, token: 'a' },
    { seq: 1, token: 'b' },
    { seq: 2, token: 'c' },
  ]);
  expect(s.seen).toHaveLength(3);
  // 1: as given. 2: the EventSource's own reconnect, same URL, resume point in Last-Event-ID.
  // 3: the client's reopen after the 503, resume point in the query next to the token.
  expect(s.seen[0]!.url).toBe('/v1/inference/job-x/stream?token=x%2By');
  expect(s.seen[1]!.url).toBe('/v1/inference/job-x/stream?token=x%2By');
  expect(s.seen[1]!.headers['last-event-id']).toBe('1');
  expect(s.seen[2]!.url.startsWith('/v1/inference/job-x/stream?')).toBe(true);
  expect(query(s.seen[2]!.url).getAll('token')).toEqual(['x+y']);
  expect(query(s.seen[2]!.url).getAll('after')).toEqual(['1']);
});

test('the after= the client sets replaces one already in the URL and keeps the other parameters', async () => {
  const s = await scripted((_req, res) =>
    sse(res, `${token(6, 'g')}id: 7\nevent: done\ndata: {"state":"completed"}\n\n`),
  );
  const c = collect(
    streamJob<string>(`${s.url}/v1/inference/job-x/stream?after=1&token=x#frag`, {
      EventSource: ES,
      after: 5,
    }),
  );
  await c.done;
  expect(c.values).toEqual([{ seq: 6, token: 'g' }]);
  expect(query(s.seen[0]!.url).getAll('after')).toEqual(['5']);
  expect(query(s.seen[0]!.url).getAll('token')).toEqual(['x']);
});

test('the terminal event, with id = last seq + 1, is no token and ends the stream: it is never resumed', async () => {
  // A server as the resume contract says: a resume at the terminal event's own id answers 204.
  const terminal = {
    done: 'event: done\ndata: {"state":"completed"}',
    error: 'event: error\ndata: {"state":"failed","error":"oom"}',
  };
  for (const [kind, event] of Object.entries(terminal)) {
    const s = await scripted((req, res) => {
      const after = req.headers['last-event-id'] ?? query(req.url ?? '').get('after');
      if (after === '2') return void res.writeHead(204).end();
      sse(res, `retry: 10\n\n${token(0, 'a')}${token(1, 'b')}id: 2\n${event}\n\n`);
    });
    const c = collect(streamJob<string>(`${s.url}/v1/inference/job-x/stream`, { EventSource: ES }));
    await c.done;
    await sleep(150); // an EventSource left open would have reconnected (retry: 10) by now
    expect(c.values.map((v) => v.seq)).toEqual([0, 1]);
    if (kind === 'done') expect(c.completed).toBe(true);
    else expect(c.error).toBeInstanceOf(JobFailedError);
    expect(s.seen).toHaveLength(1);
  }
});

test('a 204 before any terminal event (after = the terminal id) errors with STREAM_ENDED, status 204', async () => {
  const s = await scripted((_req, res) => void res.writeHead(204).end());
  const c = collect(streamJob<string>(`${s.url}/v1/inference/job-x/stream`, { EventSource: ES, after: 2 }));
  await c.done;
  expect(c.error).toBeInstanceOf(ClientError);
  expect(c.error).toMatchObject({ status: 204, code: 'STREAM_ENDED' });
  expect(s.seen).toHaveLength(1);
});

test('a 401 on a reconnect errors with a ClientError carrying the status; tokens before it stay delivered', async () => {
  const s = await scripted((_req, res, n) => {
    if (n === 0) return sse(res, `retry: 10\n\n${token(0, 'a')}${token(1, 'b')}`);
    refuse(res, 401, 'UNAUTHENTICATED');
  });
  const c = collect(streamJob<string>(`${s.url}/v1/inference/job-x/stream?token=old`, { EventSource: ES }));
  await c.done;
  expect(c.values.map((v) => v.seq)).toEqual([0, 1]);
  expect(c.error).toBeInstanceOf(ClientError);
  expect(c.error).toMatchObject({ status: 401, code: 'STREAM_REFUSED' });
  expect((c.error as Error).message).toMatch(/not authorized/);
  expect(s.seen).toHaveLength(2);
});

/** An EventSource that, like a browser's, tells no status on a failed connection. */
class NoStatusEventSource implements EventSourceLike {
  private readonly inner: EventSource;
  constructor(url: string, init?: EventSourceInitLike) {
    this.inner = init === undefined ? new EventSource(url) : new EventSource(url, init);
  }
  get readyState(): number {
    return this.inner.readyState;
  }
  addEventListener(type: string, listener: (event: MessageEventLike) => void): void {
    this.inner.addEventListener(type, (ev: Event) =>
      listener(ev instanceof MessageEvent ? (ev as MessageEventLike) : {}),
    );
  }
  close(): void {
    this.inner.close();
  }
}

test('without a status from the EventSource (a browser), one HEAD learns it: 503 is asked again, 404 is final', async () => {
  const flaky = await scripted((req, res, n) => {
    if (n < 2) return refuse(res, 503, 'DRAINING');
    if (req.method === 'HEAD') return void res.writeHead(200, { 'Content-Type': 'text/event-stream' }).end();
    sse(res, `${token(0, 'a')}id: 1\nevent: done\ndata: {"state":"completed"}\n\n`);
  });
  const c = collect(
    streamJob<string>(`${flaky.url}/v1/inference/job-x/stream?token=x`, {
      EventSource: NoStatusEventSource,
    }),
  );
  await c.done;
  expect(c.completed).toBe(true);
  expect(c.values).toEqual([{ seq: 0, token: 'a' }]);
  expect(flaky.seen.map((r) => r.method)).toEqual(['GET', 'HEAD', 'GET']);
  expect(query(flaky.seen[1]!.url).get('token')).toBe('x');

  const gone = await scripted((_req, res) => refuse(res, 404, 'JOB_NOT_FOUND'));
  const g = collect(
    streamJob<string>(`${gone.url}/v1/inference/job-x/stream`, { EventSource: NoStatusEventSource }),
  );
  await g.done;
  expect(g.error).toBeInstanceOf(ClientError);
  expect(g.error).toMatchObject({ status: 404, code: 'STREAM_REFUSED' });
  expect(gone.seen.map((r) => r.method)).toEqual(['GET', 'HEAD']);
});
