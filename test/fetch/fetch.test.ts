import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import * as esbuild from 'esbuild';
import { EventSource } from 'eventsource';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { interval, map, take } from 'rxjs';
import { JobRegistry } from '../../src/core/index.js';
import { createFetchHandler, type FetchHandler } from '../../src/fetch/index.js';
import { createJobHandler } from '../../src/http/index.js';
import { virtualClock } from '../helpers/clock.js';
import { waitFor } from '../helpers/collect.js';
import { http, parseSse, postJson } from '../helpers/http.js';

type Payload = { words: string[]; fail?: boolean };
const words = (p: Payload | undefined) =>
  interval(2).pipe(
    take(p?.words.length ?? 0),
    map((i) => p!.words[i]!),
  );

const post = (handler: FetchHandler, body: unknown, headers: Record<string, string> = {}) =>
  handler(
    new Request('http://app.test/v1/inference', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify(body),
    }),
  );

let registry: JobRegistry<string, Payload>;
let handler: FetchHandler;
beforeEach(() => {
  registry = new JobRegistry<string, Payload>();
  handler = createFetchHandler(registry, { execute: words, heartbeatMs: 0 });
});
afterEach(async () => {
  handler.close();
  await registry.dispose();
});

describe('createFetchHandler with plain Request objects', () => {
  test('POST 202, then the stream: tokens with ids, one done with id = token count, then the end', async () => {
    const res = await post(handler, { words: ['a', 'b', 'c'] });
    expect(res.status).toBe(202);
    const { job_id, sse_url } = (await res.json()) as { job_id: string; sse_url: string };
    expect(sse_url).toBe(`/v1/inference/${job_id}/stream`);
    expect(res.headers.get('location')).toBe(`/v1/inference/${job_id}`);
    const stream = await handler(new Request(`http://app.test${sse_url}`));
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = parseSse(await stream.text());
    expect(events.map((e) => `${e.event}:${e.id}:${e.data}`)).toEqual([
      'token:0:"a"',
      'token:1:"b"',
      'token:2:"c"',
      'done:3:{"state":"completed"}',
    ]);
    // The terminal event's id as a resume point: the client saw the end.
    const again = await handler(
      new Request(`http://app.test${sse_url}`, { headers: { 'Last-Event-ID': '3' } }),
    );
    expect(again.status).toBe(204);
    expect(await again.text()).toBe('');
  });

  test('the same statuses and error bodies as the Node handler', async () => {
    const cases: Array<[Request, number, string]> = [
      [new Request('http://app.test/v1/inference/job-nope'), 404, 'JOB_NOT_FOUND'],
      [new Request('http://app.test/v1/inference/job-nope', { method: 'PUT' }), 405, 'METHOD_NOT_ALLOWED'],
      [new Request('http://app.test/v1/inference/job*/stream'), 400, 'INVALID_JOB_ID'],
      [
        new Request('http://app.test/v1/inference', { method: 'POST', body: '{}' }),
        415,
        'UNSUPPORTED_MEDIA_TYPE',
      ],
      [
        new Request('http://app.test/v1/inference', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: '{oops',
        }),
        400,
        'INVALID_JSON',
      ],
      [
        new Request('http://app.test/v1/inference', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ words: ['x'.repeat(2 * 1024 * 1024)] }),
        }),
        413,
        'PAYLOAD_TOO_LARGE',
      ],
      [new Request('http://app.test/elsewhere'), 404, 'NOT_FOUND'],
    ];
    for (const [request, status, code] of cases) {
      const res = await handler(request);
      expect([request.method, request.url, res.status]).toEqual([request.method, request.url, status]);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    }
    expect(
      (await handler(new Request('http://app.test/v1/inference/job-x', { method: 'PUT' }))).headers.get(
        'allow',
      ),
    ).toBe('GET, DELETE');
    expect(registry.jobCount()).toBe(0);
  });

  test('auth: authenticate reads the Request; another principal gets 404; the signed sse_url streams without headers', async () => {
    handler.close();
    handler = createFetchHandler(registry, {
      execute: words,
      authenticate: (req) => {
        const key = req.headers.get('authorization');
        return key === 'Bearer a' ? { id: 'alice' } : key === 'Bearer b' ? { id: 'bob' } : undefined;
      },
      streamTokens: { secret: 's'.repeat(32) },
    });
    expect((await post(handler, { words: ['x'] })).status).toBe(401);
    const res = await post(handler, { words: ['x', 'y'] }, { Authorization: 'Bearer a' });
    const { job_id, sse_url } = (await res.json()) as { job_id: string; sse_url: string };
    expect(sse_url).toMatch(/\/stream\?token=/);
    const asBob = await handler(
      new Request(`http://app.test/v1/inference/${job_id}`, { headers: { Authorization: 'Bearer b' } }),
    );
    expect(asBob.status).toBe(404);
    const events = parseSse(await (await handler(new Request(`http://app.test${sse_url}`))).text());
    expect(events.map((e) => e.event)).toEqual(['token', 'token', 'done']);
    const forged = sse_url.slice(0, -1) + (sse_url.endsWith('A') ? 'B' : 'A');
    expect((await handler(new Request(`http://app.test${forged}`))).status).toBe(401);
  });

  test('a reader that does not read pauses the job stream (the job is held past its retention until it reads)', async () => {
    handler.close();
    await registry.dispose();
    const clock = virtualClock();
    registry = new JobRegistry<string, Payload>({
      retention: 50,
      retentionGrace: 20_000,
      scheduler: clock.scheduler,
    });
    handler = createFetchHandler(registry, { maxBufferedBytes: 4096, heartbeatMs: 0 });
    const id = registry.createJob();
    const big = 'x'.repeat(100);
    for (let i = 0; i < 5000; i++) registry.emit(id, big);
    registry.updateState(id, 'completed');
    const res = await handler(new Request(`http://app.test/v1/inference/${id}/stream`));
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    // The first chunk (what was written before the first read, as one piece), then nothing read a while.
    let text = decoder.decode((await reader.read()).value, { stream: true });
    expect(text.length).toBeLessThan(2 * 4096);
    clock.advance(3000);
    // Past retention, the paused stream still holds the job: it was not sent whole into memory.
    expect(registry.hasJob(id)).toBe(true);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const events = parseSse(text);
    expect(events.filter((e) => e.event === 'token')).toHaveLength(5000);
    expect(events.at(-1)).toMatchObject({ event: 'done', id: '5000' });
    // The reader caught up and let go: the next retention check removes the job.
    clock.advance(1000);
    expect(registry.hasJob(id)).toBe(false);
  });

  test('request.signal aborting ends the stream and frees its place', async () => {
    const id = registry.createJob();
    const abort = new AbortController();
    const res = await handler(
      new Request(`http://app.test/v1/inference/${id}/stream`, { signal: abort.signal }),
    );
    expect(res.status).toBe(200);
    expect(handler.connections).toBe(1);
    abort.abort();
    await waitFor(() => handler.connections === 0, 2000, 'the stream to close');
    expect(registry.getJobState(id)).toBe('queued');
  });
});

describe('mounted in frameworks', () => {
  const servers: Array<{ close(): unknown }> = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });
  const listen = async (server: Server): Promise<string> => {
    if (!server.listening) await once(server.listen(0, '127.0.0.1'), 'listening');
    servers.push({ close: () => new Promise((r) => (server.closeAllConnections(), server.close(r))) });
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };

  test('hono on @hono/node-server: a real EventSource streams a job to its end', async () => {
    const app = new Hono();
    app.all('/v1/*', (c) => handler(c.req.raw));
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server;
    await once(server, 'listening');
    const url = await listen(server);
    const { sse_url } = JSON.parse(
      (await postJson(`${url}/v1/inference`, { words: ['h', 'o', 'n', 'o'] })).body,
    );
    const seen: string[] = [];
    const es = new EventSource(url + sse_url);
    es.addEventListener('token', (e) => seen.push(JSON.parse(e.data)));
    await new Promise<void>((resolve) => es.addEventListener('done', () => resolve()));
    es.close();
    expect(seen).toEqual(['h', 'o', 'n', 'o']);
  });

  test('a Next.js-style route module answers POST, GET stream and DELETE', async () => {
    const route = await import('../../examples/next/route.js');
    try {
      const created = await route.POST(
        new Request('http://next.test/v1/inference', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ prompt: 'a b', max_tokens: 4, delay_ms: 50 }),
        }),
      );
      expect(created.status).toBe(202);
      const { job_id, sse_url } = (await created.json()) as { job_id: string; sse_url: string };
      const stream = await route.GET(new Request(`http://next.test${sse_url}`));
      const reader = stream.body!.getReader();
      const first = new TextDecoder().decode((await reader.read()).value);
      expect(first).toMatch(/^retry: /);
      const del = await route.DELETE(
        new Request(`http://next.test/v1/inference/${job_id}`, { method: 'DELETE' }),
      );
      expect(del.status).toBe(200);
      let rest = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        rest += new TextDecoder().decode(value);
      }
      expect(parseSse(rest).at(-1)).toMatchObject({
        event: 'error',
        data: '{"state":"cancelled","error":"cancelled by request"}',
      });
    } finally {
      await route.registry.dispose();
    }
  });

  test('Express under /api: sse_url and Location carry the mount path, and stream', async () => {
    const app = express();
    const nodeHandler = createJobHandler(registry, { execute: words, heartbeatMs: 0 });
    app.use('/api', nodeHandler);
    const url = await listen(createServer(app));
    const res = await postJson(`${url}/api/v1/inference`, { words: ['e', 'x'] });
    expect(res.status).toBe(202);
    const { job_id, sse_url } = JSON.parse(res.body);
    expect(sse_url).toBe(`/api/v1/inference/${job_id}/stream`);
    expect(res.headers.location).toBe(`/api/v1/inference/${job_id}`);
    const events = parseSse((await http(url + sse_url)).body);
    expect(events.map((e) => e.event)).toEqual(['token', 'token', 'done']);
    nodeHandler.close();
  });

  test('Fastify: the README recipe (hijack, hand over the parsed body) answers POST at once and streams', async () => {
    const app = Fastify();
    const nodeHandler = createJobHandler(registry, { execute: words, heartbeatMs: 0 });
    app.all('/v1/*', (request, reply) => {
      reply.hijack();
      (request.raw as typeof request.raw & { body?: unknown }).body = request.body;
      nodeHandler(request.raw, reply.raw);
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    servers.push({ close: () => app.close() });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const started = Date.now();
    const res = await postJson(`${url}/v1/inference`, { words: ['f', 'y'] });
    expect(res.status).toBe(202);
    expect(Date.now() - started).toBeLessThan(2000);
    const events = parseSse((await http(url + JSON.parse(res.body).sse_url)).body);
    expect(events.map((e) => e.event)).toEqual(['token', 'token', 'done']);
    nodeHandler.close();
  });
});

test('the fetch entry point bundles for a neutral platform with no node: import', async () => {
  const out = await esbuild.build({
    entryPoints: ['src/fetch/index.ts'],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    write: false,
    logLevel: 'silent',
  });
  const code = out.outputFiles[0]!.text;
  expect(code).toContain('createFetchHandler');
  expect(code).not.toMatch(/from\s*["']node:|require\(["']node:|import\(["']node:/);
  expect(code).not.toMatch(/from\s*["'](http|net|stream|buffer|crypto|events)["']/);
});
