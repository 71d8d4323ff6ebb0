import { EventSource } from 'eventsource';
import { Observable, interval, map, take } from 'rxjs';
import {
  ClientError,
  JobCancelledError,
  JobFailedError,
  streamJob,
  submitJob,
  watchEvents,
  type EventSourceConstructor,
} from '../../src/client/index.js';
import { collect, waitFor } from '../helpers/collect.js';
import { startProxy, startTestServer, type TestServer } from '../helpers/http.js';

const ES = EventSource as unknown as EventSourceConstructor;
type Payload = { n: number; every?: number; fail?: boolean; hang?: boolean };
const counter = (p: Payload | undefined) =>
  p!.hang
    ? new Observable<string>(() => undefined)
    : interval(p!.every ?? 1).pipe(
        take(p!.n),
        map((i) => {
          if (p!.fail && i === p!.n - 1) throw new Error('gpu fell over');
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
  expect((c.error as ClientError).code).toBe('STREAM_REFUSED');
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
