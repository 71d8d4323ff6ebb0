import { EventSource } from 'eventsource';
import { once } from 'node:events';
import { connect } from 'node:net';
import { Observable, Subject } from 'rxjs';
import { DateTime } from 'luxon';
import { JobRegistry, type RegistryEvent } from '../../src/core/index.js';
import { createJobHandler } from '../../src/http/index.js';
import { eventsAfterSnapshot } from '../../src/http/handler.js';
import { sleep, waitFor } from '../helpers/collect.js';
import { http, parseSse, postJson, rawRequest, startTestServer, type TestServer } from '../helpers/http.js';

type Payload = { words: string[]; fail?: boolean };
const words$ = (p: Payload | undefined) =>
  new Observable<string>((sub) => {
    let i = 0;
    const t = setInterval(() => {
      if (i < p!.words.length) sub.next(p!.words[i++]!);
      else if (p!.fail) sub.error(new Error('model exploded'));
      else sub.complete();
    }, 2);
    return () => clearInterval(t);
  });

let srv: TestServer<string, Payload>;
afterEach(async () => {
  await srv?.close();
});

const ERROR_BODY = (code: string) =>
  expect.objectContaining({ error: expect.objectContaining({ code, message: expect.any(String) }) });

describe('POST and GET', () => {
  beforeEach(async () => {
    srv = await startTestServer<string, Payload>({ execute: words$ });
  });

  test('POST answers 202 {job_id, sse_url} at once; GET snapshot; GET /v1/jobs lists it', async () => {
    const res = await postJson(`${srv.url}/v1/inference`, { words: ['a', 'b'] });
    expect(res.status).toBe(202);
    const body = JSON.parse(res.body);
    expect(Object.keys(body).sort()).toEqual(['job_id', 'sse_url']);
    expect(body.job_id).toMatch(/^job-[0-9a-f-]{36}$/);
    expect(body.sse_url).toBe(`/v1/inference/${body.job_id}/stream`);
    const stream = await http(srv.url + body.sse_url);
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toMatch(/^text\/event-stream/);
    const snap = JSON.parse((await http(`${srv.url}/v1/inference/${body.job_id}`)).body);
    expect(snap).toEqual({
      job_id: body.job_id,
      state: 'completed',
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      updated_at: expect.stringMatching(/Z$/),
      token_count: 2,
      first_token_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    });
    const list = JSON.parse((await http(`${srv.url}/v1/jobs`)).body);
    expect(list.map((j: { job_id: string }) => j.job_id)).toEqual([body.job_id]);
  });

  test('the stream is the exact wire format: retry, tokens with ids, one done, then the end', async () => {
    const { job_id } = JSON.parse((await postJson(`${srv.url}/v1/inference`, { words: ['x', 'y\nz'] })).body);
    const raw = await rawRequest(
      srv.port,
      `GET /v1/inference/${job_id}/stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    const body = raw.slice(raw.indexOf('\r\n\r\n') + 4);
    const dechunked = body.replace(/(^|\r\n)[0-9a-f]+\r\n/g, '$1').replace(/\r\n/g, '');
    expect(dechunked).toBe(
      'retry: 1000\n\nid: 0\nevent: token\ndata: "x"\n\nid: 1\nevent: token\ndata: "y\\nz"\n\nid: 2\nevent: done\ndata: {"state":"completed"}\n\n',
    );
  });

  test('a failing job ends with one error event, its id the token count, the executor error redacted', async () => {
    const { sse_url } = JSON.parse(
      (await postJson(`${srv.url}/v1/inference`, { words: ['a'], fail: true })).body,
    );
    const events = parseSse((await http(srv.url + sse_url)).body);
    expect(events.map((e) => e.event)).toEqual(['token', 'error']);
    expect(events[1]!.id).toBe('1');
    expect(JSON.parse(events[1]!.data)).toEqual({ state: 'failed', error: 'job failed' });
  });

  test('Last-Event-ID or ?after resumes after seq N; Last-Event-ID wins', async () => {
    const { sse_url } = JSON.parse(
      (await postJson(`${srv.url}/v1/inference`, { words: ['a', 'b', 'c', 'd'] })).body,
    );
    await http(srv.url + sse_url);
    const q = parseSse((await http(`${srv.url}${sse_url}?after=1`)).body);
    expect(q.filter((e) => e.event === 'token').map((e) => e.id)).toEqual(['2', '3']);
    const h = parseSse(
      (await http(`${srv.url}${sse_url}?after=0`, { headers: { 'Last-Event-ID': '2' } })).body,
    );
    expect(h.filter((e) => e.event === 'token').map((e) => e.id)).toEqual(['3']);
  });

  test('DELETE cancels: 200 snapshot, the stream ends with a cancelled error event, a second DELETE is 409', async () => {
    const { job_id, sse_url } = JSON.parse(
      (await postJson(`${srv.url}/v1/inference`, { words: Array(10_000).fill('w') })).body,
    );
    const streaming = http(srv.url + sse_url);
    await waitFor(() => srv.handler.connections === 1, 3000, 'the stream open');
    const del = await http(`${srv.url}/v1/inference/${job_id}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(JSON.parse(del.body)).toMatchObject({ job_id, state: 'cancelled', error: 'cancelled by request' });
    const events = parseSse((await streaming).body);
    expect(events.at(-1)).toEqual({
      id: String(events.length - 1),
      event: 'error',
      data: JSON.stringify({ state: 'cancelled', error: 'cancelled by request' }),
    });
    const again = await http(`${srv.url}/v1/inference/${job_id}`, { method: 'DELETE' });
    expect(again.status).toBe(409);
    expect(JSON.parse(again.body)).toEqual(ERROR_BODY('JOB_TERMINAL'));
  });

  test('the eventsource package reads a stream to its done event', async () => {
    const { sse_url } = JSON.parse(
      (await postJson(`${srv.url}/v1/inference`, { words: ['one', 'two', 'three'] })).body,
    );
    const es = new EventSource(srv.url + sse_url);
    const got: Array<[string, string]> = [];
    es.addEventListener('token', (e) => got.push([e.lastEventId, JSON.parse(e.data)]));
    await new Promise<void>((resolve) => es.addEventListener('done', () => resolve()));
    es.close();
    expect(got).toEqual([
      ['0', 'one'],
      ['1', 'two'],
      ['2', 'three'],
    ]);
  });

  test('200 concurrent streams all complete, in order', async () => {
    const jobs = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        postJson(`${srv.url}/v1/inference`, { words: Array.from({ length: 20 }, (_, k) => `${i}-${k}`) }),
      ),
    );
    const bodies = await Promise.all(jobs.map((j) => http(srv.url + JSON.parse(j.body).sse_url)));
    bodies.forEach((b, i) => {
      const events = parseSse(b.body);
      expect(events.filter((e) => e.event === 'token').map((e) => JSON.parse(e.data))).toEqual(
        Array.from({ length: 20 }, (_, k) => `${i}-${k}`),
      );
      expect(events.at(-1)!.event).toBe('done');
    });
  });

  test('/v1/events sends a snapshot first, then created / stateChanged / removed', async () => {
    const before = srv.registry.createJob();
    const es = new EventSource(`${srv.url}/v1/events`);
    const seen: Array<{ type: string; data: Record<string, unknown> }> = [];
    for (const type of ['snapshot', 'created', 'stateChanged', 'removed'])
      es.addEventListener(type, (e) => seen.push({ type, data: JSON.parse(e.data) }));
    await waitFor(() => seen.length > 0, 5000, 'snapshot');
    const { job_id } = JSON.parse((await postJson(`${srv.url}/v1/inference`, { words: ['a'] })).body);
    await waitFor(
      () => seen.some((e) => e.type === 'stateChanged' && e.data.to === 'completed'),
      5000,
      'completed',
    );
    srv.registry.removeJob(job_id);
    await waitFor(() => seen.some((e) => e.type === 'removed'), 5000, 'removed');
    es.close();
    expect(seen[0]!.type).toBe('snapshot');
    expect((seen[0]!.data as unknown as Array<{ job_id: string }>).map((j) => j.job_id)).toEqual([before]);
    const forJob = seen.slice(1).filter((e) => e.data.job_id === job_id);
    expect(forJob.map((e) => (e.type === 'stateChanged' ? `${e.data.from}->${e.data.to}` : e.type))).toEqual([
      'created',
      'queued->running',
      'running->completed',
      'removed',
    ]);
    expect(forJob[0]!.data.at).toMatch(/Z$/);
  });

  test('a client that disconnects is unsubscribed at once; the job goes on and can be resumed', async () => {
    const id = srv.registry.createJob();
    const socket = connect(srv.port, '127.0.0.1');
    socket.write(`GET /v1/inference/${id}/stream HTTP/1.1\r\nHost: x\r\n\r\n`);
    await once(socket, 'data');
    await waitFor(() => srv.handler.connections === 1, 2000, 'connection');
    socket.destroy();
    await waitFor(() => srv.handler.connections === 0, 2000, 'unsubscribe');
    srv.registry.emit(id, 'later');
    srv.registry.updateState(id, 'completed');
    const events = parseSse((await http(`${srv.url}/v1/inference/${id}/stream`)).body);
    expect(events.map((e) => e.event)).toEqual(['token', 'done']);
  });
});

describe('bad input: contract status, JSON error, no job created', () => {
  beforeEach(async () => {
    srv = await startTestServer<string, Payload>({ execute: words$, maxBodyBytes: 1024, bodyTimeoutMs: 300 });
  });
  afterEach(() => {
    expect(srv.registry.jobCount()).toBe(0);
  });
  const postRaw = (body: string | undefined, type = 'application/json') =>
    http(`${srv.url}/v1/inference`, {
      method: 'POST',
      headers: { 'content-type': type },
      ...(body === undefined ? {} : { body }),
    });

  test('malformed JSON is 400', async () => {
    const r = await postRaw('{"words": [');
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body)).toEqual(ERROR_BODY('INVALID_JSON'));
  });

  test('an empty body is 400', async () => {
    const r = await postRaw(undefined);
    expect(r.status).toBe(400);
  });

  test('a non-JSON content type is 415', async () => {
    const r = await postRaw('{}', 'text/plain');
    expect(r.status).toBe(415);
    expect(JSON.parse(r.body)).toEqual(ERROR_BODY('UNSUPPORTED_MEDIA_TYPE'));
  });

  test('a body over maxBodyBytes is 413, refused by its declared length before reading', async () => {
    const r = await postRaw(JSON.stringify({ words: ['x'.repeat(5000)] }));
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body)).toEqual(ERROR_BODY('PAYLOAD_TOO_LARGE'));
  });

  test('a chunked body is refused with 413 while reading, not after buffering it all', async () => {
    const socket = connect(srv.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.write(
      'POST /v1/inference HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
    );
    let sent = 0;
    // Keep sending well past the limit; the answer must come before we are done.
    for (let i = 0; i < 200 && chunks.length === 0 && !socket.destroyed; i++) {
      const piece = 'x'.repeat(512);
      socket.write(`${piece.length.toString(16)}\r\n${piece}\r\n`);
      sent += 512;
      await sleep(2);
    }
    await waitFor(() => chunks.length > 0, 3000, 'answer');
    socket.destroy();
    expect(Buffer.concat(chunks).toString()).toMatch(/^HTTP\/1.1 413/);
    expect(sent).toBeLessThan(200 * 512);
  });

  test('a refused body is read and thrown away: its client sends all of it, sees the 413, and the connection serves the next request', async () => {
    const socket = connect(srv.port, '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (text += c));
    let closed = false;
    socket.on('close', () => (closed = true));
    socket.on('error', () => undefined);
    const size = 4 * 1024 * 1024;
    socket.write(
      `POST /v1/inference HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`,
    );
    await waitFor(() => text.includes('\r\n\r\n'), 3000, 'the 413');
    expect(text).toMatch(/^HTTP\/1.1 413/);
    expect(text).not.toMatch(/\r\nConnection: close\r\n/i);
    // The rest of the body goes after the answer: a server that stopped reading would reset us here.
    const piece = Buffer.alloc(64 * 1024, 0x20);
    for (let sent = 0; sent < size; sent += piece.length) {
      if (!socket.write(piece)) await once(socket, 'drain');
    }
    text = '';
    socket.write(`GET /v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    await waitFor(() => closed, 3000, 'the second answer and the close');
    expect(text).toMatch(/^HTTP\/1.1 200/);
  });

  test('a declared body too large to throw away (over 64 MiB) is 413 with Connection: close', async () => {
    const r = await rawRequest(
      srv.port,
      `POST /v1/inference HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${65 * 1024 * 1024}\r\n\r\n`,
    );
    expect(r).toMatch(/^HTTP\/1.1 413/);
    expect(r).toMatch(/\r\nConnection: close\r\n/i);
  });

  test('a body sent byte by byte forever times out with 408', async () => {
    const socket = connect(srv.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.write(
      'POST /v1/inference HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{',
    );
    const drip = setInterval(() => socket.writable && socket.write(' '), 20);
    await waitFor(() => chunks.length > 0, 3000, 'timeout answer');
    clearInterval(drip);
    socket.destroy();
    expect(Buffer.concat(chunks).toString()).toMatch(/^HTTP\/1.1 408/);
  });

  test('unknown job ids are 404; malformed ones (even 5 KB long) are 400', async () => {
    for (const path of ['/v1/inference/job-nope', '/v1/inference/job-nope/stream']) {
      const r = await http(srv.url + path);
      expect(r.status).toBe(404);
      expect(JSON.parse(r.body)).toEqual(ERROR_BODY('JOB_NOT_FOUND'));
    }
    expect((await http(`${srv.url}/v1/inference/job-nope`, { method: 'DELETE' })).status).toBe(404);
    for (const bad of ['a'.repeat(5000), 'job%20x', 'job*', '%7Bjob%7D', '%E0%A4%A']) {
      const r = await http(`${srv.url}/v1/inference/${bad}/stream`);
      expect(r.status).toBe(400);
      // A malformed percent escape is refused by the path check before the id check.
      expect(JSON.parse(r.body).error.code).toMatch(/^(INVALID_JOB_ID|INVALID_PATH)$/);
    }
  });

  test('a malformed Last-Event-ID or ?after is 400; an evicted resume point is 410', async () => {
    const r2 = new JobRegistry<string>({ replayLimit: 2 });
    await srv.close();
    srv = (await startTestServer<string, Payload>(
      {},
      {},
      r2 as unknown as JobRegistry<string, Payload>,
    )) as TestServer<string, Payload>;
    const id = srv.registry.createJob();
    for (const t of ['a', 'b', 'c', 'd']) srv.registry.emit(id, t);
    for (const bad of ['-1', '1.5', 'abc', '1e3', '0x1', '99999999999999999999']) {
      const r = await http(`${srv.url}/v1/inference/${id}/stream`, { headers: { 'Last-Event-ID': bad } });
      expect([bad, r.status]).toEqual([bad, 400]);
      expect(JSON.parse(r.body)).toEqual(ERROR_BODY('INVALID_RESUME_POINT'));
    }
    srv.registry.updateState(id, 'completed');
    // An empty Last-Event-ID means "no resume point": the kept tokens are replayed.
    const blank = await http(`${srv.url}/v1/inference/${id}/stream`, { headers: { 'Last-Event-ID': ' ' } });
    expect(parseSse(blank.body).map((e) => `${e.event}:${e.id}`)).toEqual(['token:2', 'token:3', 'done:4']);
    expect((await http(`${srv.url}/v1/inference/${id}/stream?after=x`)).status).toBe(400);
    const gone = await http(`${srv.url}/v1/inference/${id}/stream?after=0`);
    expect(gone.status).toBe(410);
    expect(JSON.parse(gone.body)).toEqual(ERROR_BODY('REPLAY_EXPIRED'));
    srv.registry.removeJob(id);
  });

  test('HEAD on a stream answers its headers and holds nothing open', async () => {
    const id = srv.registry.createJob();
    const r = await http(`${srv.url}/v1/inference/${id}/stream`, { method: 'HEAD' });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(srv.handler.connections).toBe(0);
    expect((await http(`${srv.url}/v1/inference/job-none/stream`, { method: 'HEAD' })).status).toBe(404);
    srv.registry.removeJob(id);
  });

  test('wrong methods are 405 with Allow; unknown sub-paths 404; paths outside the routes 404 without next', async () => {
    const cases: Array<[string, string, string]> = [
      ['GET', '/v1/inference', 'POST'],
      ['PUT', '/v1/inference/job-x', 'GET, DELETE'],
      ['POST', '/v1/inference/job-x/stream', 'GET'],
      ['DELETE', '/v1/jobs', 'GET'],
      ['POST', '/v1/events', 'GET'],
    ];
    for (const [method, path, allow] of cases) {
      const r = await http(srv.url + path, { method });
      expect([method, path, r.status, r.headers.allow]).toEqual([method, path, 405, allow]);
      expect(JSON.parse(r.body)).toEqual(ERROR_BODY('METHOD_NOT_ALLOWED'));
    }
    expect((await http(`${srv.url}/v1/inference/job-x/other`)).status).toBe(404);
    expect((await http(`${srv.url}/elsewhere`)).status).toBe(404);
  });

  test('parsePayload can refuse a payload with 400 INVALID_PAYLOAD', async () => {
    await srv.close();
    srv = await startTestServer<string, Payload>({
      execute: words$,
      parsePayload: (b) => {
        if (!Array.isArray((b as Payload).words)) throw new Error('"words" must be an array');
        return b as Payload;
      },
    });
    const r = await postJson(`${srv.url}/v1/inference`, { prompt: 'x' });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body).error).toEqual({
      code: 'INVALID_PAYLOAD',
      message: 'job-registry: "words" must be an array',
    });
  });
});

describe('mounting and options', () => {
  test('next() is called for paths outside the routes (Express/Connect style)', async () => {
    const registry = new JobRegistry<string>();
    const handler = createJobHandler(registry);
    const { createServer } = await import('node:http');
    const server = createServer((req, res) => handler(req, res, () => (res.writeHead(299), res.end('mine'))));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const r = await http(`http://127.0.0.1:${port}/health`);
    expect([r.status, r.body]).toEqual([299, 'mine']);
    expect((await http(`http://127.0.0.1:${port}/v1/jobs`)).status).toBe(200);
    await registry.dispose();
    handler.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  test('startOn: stream defers execution to the first reader; unread deferred jobs hit claimTimeout', async () => {
    let started = 0;
    srv = await startTestServer<string, Payload>(
      { execute: (p) => (started++, words$(p)), startOn: 'stream', claimTimeout: 50 },
      { retention: 10_000 },
    );
    const a = JSON.parse((await postJson(`${srv.url}/v1/inference`, { words: ['a'] })).body);
    const b = JSON.parse((await postJson(`${srv.url}/v1/inference`, { words: ['b'] })).body);
    expect(started).toBe(0);
    const events = parseSse((await http(srv.url + a.sse_url)).body);
    expect(events.map((e) => e.data)).toEqual(['"a"', '{"state":"completed"}']);
    expect(started).toBe(1);
    await waitFor(() => srv.registry.getJobState(b.job_id) === 'cancelled', 3000, 'claim timeout');
    expect(started).toBe(1);
  });

  test('cors answers preflight and sets Allow-Origin', async () => {
    srv = await startTestServer<string, Payload>({ cors: { origin: ['http://app.test'] } });
    const pre = await http(`${srv.url}/v1/inference`, {
      method: 'OPTIONS',
      headers: { origin: 'http://app.test' },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe('http://app.test');
    expect(pre.headers['access-control-allow-methods']).toBe('POST');
    const other = await http(`${srv.url}/v1/jobs`, { headers: { origin: 'http://evil.test' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  test('tokens that arrive in the same tick go out in one write', async () => {
    const registry = new JobRegistry<string>();
    const handler = createJobHandler(registry);
    const writes: string[] = [];
    const { createServer } = await import('node:http');
    const server = createServer((req, res) => {
      const write = res.write.bind(res) as (chunk: string) => boolean;
      res.write = ((chunk: string) => (writes.push(String(chunk)), write(chunk))) as typeof res.write;
      handler(req, res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const id = registry.createJob();
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (c) => (text += c.toString()));
    socket.write(`GET /v1/inference/${id}/stream HTTP/1.1\r\nHost: x\r\n\r\n`);
    await waitFor(() => writes.length === 1, 3000, 'retry field');
    for (let i = 0; i < 50; i++) registry.emit(id, `t${i}`);
    await waitFor(() => text.includes('"t49"'), 3000, 'tokens');
    for (let i = 50; i < 60; i++) registry.emit(id, `t${i}`);
    await waitFor(() => text.includes('"t59"'), 3000, 'more tokens');
    expect(writes).toHaveLength(3);
    expect(writes[0]).toBe('retry: 1000\n\n');
    expect(writes[1]!.match(/event: token/g)).toHaveLength(50);
    expect(writes[2]!.match(/event: token/g)).toHaveLength(10);
    socket.destroy();
    await registry.dispose();
    handler.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  test('a body already parsed by a framework (express.json() style) is used as the payload', async () => {
    const registry = new JobRegistry<string, { words: string[] }>();
    const handler = createJobHandler(registry);
    const { createServer } = await import('node:http');
    const server = createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString()));
      req.on('end', () => {
        (req as typeof req & { body: unknown }).body = JSON.parse(text);
        handler(req, res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const res = await postJson(`http://127.0.0.1:${port}/v1/inference`, { words: ['pre', 'parsed'] });
    expect(res.status).toBe(202);
    expect(registry.takePayload(JSON.parse(res.body).job_id)).toEqual({ words: ['pre', 'parsed'] });
    await registry.dispose();
    handler.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  test('an /v1/events reader that never reads is disconnected past maxBufferedBytes, not buffered forever', async () => {
    srv = await startTestServer<string, Payload>({ maxBufferedBytes: 16 * 1024, heartbeatMs: 0 });
    const socket = connect(srv.port, '127.0.0.1');
    socket.write('GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n');
    await once(socket, 'data');
    socket.pause();
    await waitFor(() => srv.handler.connections === 1, 2000, 'events connection');
    for (let i = 0; i < 20_000 && srv.handler.connections > 0; i++) {
      srv.registry.removeJob(srv.registry.createJob());
      if (i % 200 === 0) await sleep(1);
    }
    await waitFor(() => srv.handler.connections === 0, 5000, 'disconnect');
    socket.destroy();
  });

  test('heartbeat comments keep an idle stream alive', async () => {
    srv = await startTestServer<string, Payload>({ heartbeatMs: 30 });
    const id = srv.registry.createJob();
    const socket = connect(srv.port, '127.0.0.1');
    let text = '';
    socket.on('data', (c) => (text += c.toString()));
    socket.write(`GET /v1/inference/${id}/stream HTTP/1.1\r\nHost: x\r\n\r\n`);
    await waitFor(() => (text.match(/: ping/g) ?? []).length >= 2, 3000, 'pings');
    socket.destroy();
  });

  test('a reader that never reads: the stream pauses at maxBufferedBytes, server memory stays bounded, then catches up', async () => {
    srv = await startTestServer<string, Payload>({ maxBufferedBytes: 64 * 1024 });
    let maxQueued = 0;
    const sockets: import('node:net').Socket[] = [];
    srv.server.on('connection', (s) => sockets.push(s));
    const sample = setInterval(
      () => sockets.forEach((s) => (maxQueued = Math.max(maxQueued, s.writableLength))),
      1,
    );
    const id = srv.registry.createJob();
    const socket = connect(srv.port, '127.0.0.1');
    socket.write(`GET /v1/inference/${id}/stream HTTP/1.1\r\nHost: x\r\n\r\n`);
    await once(socket, 'data');
    socket.pause();
    const big = 'y'.repeat(1000);
    const source = new Subject<string>();
    srv.registry.setTokenSource(id, source);
    for (let i = 0; i < 20_000; i++) {
      source.next(big);
      if (i % 500 === 0) await sleep(1);
    }
    source.complete();
    await sleep(50);
    clearInterval(sample);
    // 20 MB were produced; what waits in the server's socket buffer stays near the limit plus one tick's batch.
    expect(maxQueued).toBeGreaterThan(0);
    expect(maxQueued).toBeLessThan(2 * 1024 * 1024);
    let received = 0;
    let tail = '';
    socket.on('data', (c: Buffer) => {
      received += c.length;
      tail = (tail + c.toString('latin1')).slice(-200);
    });
    socket.resume();
    await waitFor(() => tail.includes('event: done'), 20_000, 'catch up');
    socket.destroy();
    expect(received).toBeGreaterThan(20_000 * 1000);
  });
});

describe('/v1/events after its snapshot', () => {
  test('a job created after the snapshot keeps its later events, its removal too', () => {
    const at = DateTime.fromMillis(1000, { zone: 'utc' });
    const later = DateTime.fromMillis(2000, { zone: 'utc' });
    const snap = { id: 'job-old', state: 'running' as const, createdAt: at, updatedAt: at, tokenCount: 0 };
    const early: RegistryEvent[] = [
      { type: 'created', jobId: 'job-old', at },
      { type: 'created', jobId: 'job-new', at: later },
      { type: 'stateChanged', jobId: 'job-new', from: 'queued', to: 'cancelled', at: later },
      { type: 'removed', jobId: 'job-new', at: later },
      { type: 'removed', jobId: 'job-gone', at },
      { type: 'stateChanged', jobId: 'job-old', from: 'queued', to: 'running', at },
      { type: 'removed', jobId: 'job-old', at: later },
    ];
    const kept = eventsAfterSnapshot([snap], early).map((e) => `${e.type}:${e.jobId}`);
    expect(kept).toEqual(['created:job-new', 'stateChanged:job-new', 'removed:job-new', 'removed:job-old']);
  });
});
