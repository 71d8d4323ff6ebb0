/**
 * One policy for every surface, as a table: every policy (authentication, visibility, job quota, stream
 * limit, body bound, CORS, drain) against every route of every protocol (dual-call, Responses, Durable
 * Streams), through both handler forms (Node, fetch on `@hono/node-server`), in memory and on Redis.
 */
import { once } from 'node:events';
import type { IncomingMessage, Server } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { interval, map, take } from 'rxjs';
import { JobRegistry } from '../../src/core/index.js';
import {
  createDurableStreamsHandler,
  createFetchDurableStreamsHandler,
} from '../../src/durable-streams/index.js';
import { createFetchHandler, createFetchResponsesHandler } from '../../src/fetch/index.js';
import { createJobHandler, createResponsesHandler } from '../../src/http/index.js';
import { redisBackend } from '../../src/redis/index.js';
import { http, openResponse, type Answer, type OpenResponse } from '../helpers/http.js';
import { dropPrefix, haveRedis, quietLogger, REDIS_URL, testPrefix } from '../helpers/redis.js';

const ALICE = { authorization: 'Bearer alice' };
const BOB = { authorization: 'Bearer bob' };
const ORIGIN = 'https://app.example';
const quiet = { error: () => undefined, warn: () => undefined };
const principalOf = (header: string | null | undefined): { id: string } | undefined =>
  header === 'Bearer alice' ? { id: 'alice' } : header === 'Bearer bob' ? { id: 'bob' } : undefined;

/** Policy options every protocol gets, with small limits. */
const policy = {
  maxJobsPerPrincipal: 2,
  maxStreamsPerPrincipal: 1,
  maxBodyBytes: 2048,
  cors: { origin: [ORIGIN], credentials: true },
  logger: quiet,
  heartbeatMs: 0,
};

/** A model that runs until cancelled: a token every 20 ms. */
const slow = () =>
  interval(20).pipe(
    take(10_000),
    map((i) => `w${i} `),
  );

interface Stack {
  url: string;
  registry: JobRegistry<string, unknown>;
  drain(): void;
  close(): Promise<void>;
}

async function startStack(
  form: 'node' | 'fetch',
  backend: 'memory' | 'redis',
  prefix: string,
): Promise<Stack> {
  const registry = new JobRegistry<string, unknown>(
    backend === 'redis'
      ? { backend: redisBackend({ url: REDIS_URL, prefix, logger: quietLogger }), logger: quiet }
      : { logger: quiet },
  );
  await registry.ready();
  const responsesOptions = { execute: slow, toPayload: (r: { input?: unknown }) => r.input };
  let server: Server;
  let handlers: Array<{ close(): void; drain(): void }>;
  if (form === 'node') {
    const auth = { authenticate: (req: IncomingMessage) => principalOf(req.headers.authorization) };
    const jobs = createJobHandler(registry, { ...policy, ...auth, execute: slow });
    const responses = createResponsesHandler(registry, { ...policy, ...auth, ...responsesOptions });
    const streams = createDurableStreamsHandler(registry, { ...policy, ...auth });
    handlers = [jobs, responses, streams];
    server = createServer((req, res) => jobs(req, res, () => responses(req, res, () => streams(req, res))));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  } else {
    const auth = { authenticate: (req: Request) => principalOf(req.headers.get('authorization')) };
    const streams = createFetchDurableStreamsHandler(registry, { ...policy, ...auth });
    const responses = createFetchResponsesHandler(registry, {
      ...policy,
      ...auth,
      ...responsesOptions,
      notFound: streams,
    });
    const jobs = createFetchHandler(registry, { ...policy, ...auth, execute: slow, notFound: responses });
    handlers = [jobs, responses, streams];
    server = serve({ fetch: jobs, port: 0, hostname: '127.0.0.1' }) as Server;
    await once(server, 'listening');
  }
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    registry,
    drain: () => handlers.forEach((h) => h.drain()),
    close: async () => {
      handlers.forEach((h) => h.close());
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await registry.dispose();
    },
  };
}

/** A protocol as the table sees it: how to create a resource, and its routes on one. */
interface Surface {
  name: string;
  /** Creates a live resource as `headers`' principal; its id and the answer. */
  create(
    url: string,
    headers: Record<string, string>,
    body?: string,
  ): Promise<{ answer: Answer; id: string }>;
  /** Routes on one resource: method, path and what they need. */
  routes(id: string): Array<{ method: string; path: string; body?: string; stream?: boolean }>;
  /** A reader that stays open on one resource. */
  reader(id: string): string;
}

const json = { 'content-type': 'application/json' };
const text = { 'content-type': 'text/plain' };
let names = 0;

const surfaces: Surface[] = [
  {
    name: 'dual-call',
    create: async (url, headers, body = JSON.stringify({ prompt: 'x' })) => {
      const answer = await http(`${url}/v1/inference`, {
        method: 'POST',
        headers: { ...json, ...headers },
        body,
      });
      return { answer, id: answer.status === 202 ? JSON.parse(answer.body).job_id : '' };
    },
    routes: (id) => [
      { method: 'GET', path: `/v1/inference/${id}` },
      { method: 'GET', path: `/v1/inference/${id}/stream`, stream: true },
      { method: 'HEAD', path: `/v1/inference/${id}/stream` },
      { method: 'DELETE', path: `/v1/inference/${id}` },
    ],
    reader: (id) => `/v1/inference/${id}/stream`,
  },
  {
    name: 'responses',
    create: async (url, headers, body = JSON.stringify({ model: 'm', input: 'x', background: true })) => {
      const answer = await http(`${url}/v1/responses`, {
        method: 'POST',
        headers: { ...json, ...headers },
        body,
      });
      return { answer, id: answer.status === 200 ? JSON.parse(answer.body).id : '' };
    },
    routes: (id) => [
      { method: 'GET', path: `/v1/responses/${id}` },
      { method: 'GET', path: `/v1/responses/${id}?stream=true`, stream: true },
      { method: 'POST', path: `/v1/responses/${id}/cancel` },
    ],
    reader: (id) => `/v1/responses/${id}?stream=true`,
  },
  {
    name: 'durable streams',
    create: async (url, headers, body) => {
      const id = `s${++names}-${Math.random().toString(36).slice(2, 8)}`;
      const answer = await http(`${url}/v1/stream/${id}`, {
        method: 'PUT',
        headers: { ...text, ...headers },
        ...(body !== undefined ? { body } : {}),
      });
      return { answer, id };
    },
    routes: (id) => [
      { method: 'GET', path: `/v1/stream/${id}?offset=-1` },
      { method: 'HEAD', path: `/v1/stream/${id}` },
      { method: 'GET', path: `/v1/stream/${id}?offset=-1&live=long-poll`, stream: true },
      { method: 'GET', path: `/v1/stream/${id}?offset=-1&live=sse`, stream: true },
      { method: 'POST', path: `/v1/stream/${id}`, body: 'more' },
      { method: 'DELETE', path: `/v1/stream/${id}` },
      { method: 'PUT', path: `/v1/stream/fork-${id}`, body: '' },
    ],
    reader: (id) => `/v1/stream/${id}?offset=-1&live=sse`,
  },
];

/** Request headers for a route: the fork names its source. */
function routeHeaders(path: string, id: string, who: Record<string, string>): Record<string, string> {
  return path.includes('/fork-')
    ? { ...text, ...who, 'stream-forked-from': `/v1/stream/${id}` }
    : { ...text, ...who };
}

const forms = ['node', 'fetch'] as const;
const backends = ['memory', 'redis'] as const;
const redis = await haveRedis();
const open: OpenResponse[] = [];

describe.each(backends)('every policy on every route (%s)', (backend) => {
  describe.each(forms)('%s handler', (form) => {
    let stack: Stack;
    const prefix = testPrefix('policy-table');
    beforeEach(async () => {
      if (backend === 'redis' && !redis) return;
      stack = await startStack(form, backend, prefix);
    });
    afterEach(async () => {
      for (const r of open.splice(0)) r.close();
      await stack?.close();
    });
    afterAll(() => (backend === 'redis' && redis ? dropPrefix(prefix) : undefined));
    const skip = (): boolean => backend === 'redis' && !redis;

    test.each(surfaces.map((s) => [s.name, s] as const))(
      '%s: no credentials answers 401 everywhere',
      async (_, s) => {
        if (skip()) return;
        expect((await s.create(stack.url, {})).answer.status).toBe(401);
        const { id, answer } = await s.create(stack.url, ALICE);
        expect(answer.status).toBeLessThan(300);
        for (const r of s.routes(id)) {
          const a = await http(stack.url + r.path, {
            method: r.method,
            headers: routeHeaders(r.path, id, {}),
            ...(r.body !== undefined ? { body: r.body } : {}),
          });
          expect([r.method, r.path, a.status]).toEqual([r.method, r.path, 401]);
        }
      },
    );

    test.each(surfaces.map((s) => [s.name, s] as const))(
      "%s: another principal's resource answers 404 on every route, as an unknown one",
      async (_, s) => {
        if (skip()) return;
        const { id } = await s.create(stack.url, ALICE);
        for (const target of [id, `${id.slice(0, -4)}beef`]) {
          for (const r of s.routes(target)) {
            const a = await http(stack.url + r.path, {
              method: r.method,
              headers: routeHeaders(r.path, target, BOB),
              ...(r.body !== undefined ? { body: r.body } : {}),
            });
            expect([r.method, r.path, a.status]).toEqual([r.method, r.path, 404]);
          }
        }
        // Untouched: the owner still reads it.
        const own = s.routes(id)[0]!;
        expect((await http(stack.url + own.path, { headers: ALICE })).status).toBe(200);
      },
    );

    test.each(surfaces.map((s) => [s.name, s] as const))(
      '%s: the job quota counts every live job and stream, however made: 429 with Retry-After',
      async (_, s) => {
        if (skip()) return;
        // One job through another surface, one through this one: the quota (2) is full.
        const other = surfaces.find((x) => x !== s)!;
        expect((await other.create(stack.url, ALICE)).answer.status).toBeLessThan(300);
        expect((await s.create(stack.url, ALICE)).answer.status).toBeLessThan(300);
        const over = (await s.create(stack.url, ALICE)).answer;
        expect(over.status).toBe(429);
        expect(over.headers['retry-after']).toBe('5');
        // Another principal is not held back.
        expect((await s.create(stack.url, BOB)).answer.status).toBeLessThan(300);
      },
    );

    test.each(surfaces.map((s) => [s.name, s] as const))(
      '%s: the stream limit counts every open reader: 429 on every stream route',
      async (_, s) => {
        if (skip()) return;
        const { id } = await s.create(stack.url, ALICE);
        const first = await openResponse(stack.url + s.reader(id), { headers: ALICE });
        open.push(first);
        expect(first.status).toBe(200);
        for (const r of s.routes(id).filter((x) => x.stream === true)) {
          const a = await http(stack.url + r.path, { headers: ALICE });
          expect([r.path, a.status, a.headers['retry-after']]).toEqual([r.path, 429, '5']);
        }
        if (s.name === 'responses') {
          // A create that answers with its stream, refused: no response runs on for a client that never
          // learns its id.
          const refused = await http(`${stack.url}/v1/responses`, {
            method: 'POST',
            headers: { ...json, ...ALICE },
            body: JSON.stringify({ model: 'm', input: 'x', stream: true, background: true }),
          });
          expect(refused.status).toBe(429);
          expect(stack.registry.liveJobsOf('alice')).toBe(1);
        }
      },
    );

    test.each(surfaces.map((s) => [s.name, s] as const))(
      '%s: bodies are bounded by maxBodyBytes on create and append: 413',
      async (_, s) => {
        if (skip()) return;
        const big =
          s.name === 'durable streams'
            ? 'x'.repeat(4096)
            : JSON.stringify({ prompt: 'x'.repeat(4096), input: 'x' });
        expect((await s.create(stack.url, ALICE, big)).answer.status).toBe(413);
        const { id } = await s.create(stack.url, ALICE);
        for (const r of s.routes(id).filter((x) => x.body !== undefined && x.body !== '')) {
          const a = await http(stack.url + r.path, {
            method: r.method,
            headers: { ...text, ...ALICE },
            body: big,
          });
          expect([r.path, a.status]).toEqual([r.path, 413]);
        }
        expect(stack.registry.liveJobsOf('alice')).toBe(1);
      },
    );

    test.each(surfaces.map((s) => [s.name, s] as const))(
      '%s: CORS headers come only from the cors option, on every route and preflight',
      async (_, s) => {
        if (skip()) return;
        const { id } = await s.create(stack.url, { ...ALICE, origin: ORIGIN });
        for (const r of s.routes(id).filter((x) => x.stream !== true && x.method !== 'DELETE')) {
          const ok = await http(stack.url + r.path, {
            method: r.method,
            headers: { ...routeHeaders(r.path, id, ALICE), origin: ORIGIN },
          });
          expect([r.path, ok.headers['access-control-allow-origin']]).toEqual([r.path, ORIGIN]);
          expect(ok.headers['access-control-allow-credentials']).toBe('true');
          const foreign = await http(stack.url + r.path, {
            method: r.method,
            headers: { ...routeHeaders(r.path, id, ALICE), origin: 'https://evil.example' },
          });
          expect([r.path, foreign.headers['access-control-allow-origin']]).toEqual([r.path, undefined]);
          const pre = await http(stack.url + r.path, {
            method: 'OPTIONS',
            headers: { origin: 'https://evil.example', 'access-control-request-method': r.method },
          });
          expect(pre.headers['access-control-allow-methods']).toBeUndefined();
        }
      },
    );

    test.each(surfaces.map((s) => [s.name, s] as const))(
      '%s: while draining, creating answers 503 with Retry-After',
      async (_, s) => {
        if (skip()) return;
        stack.drain();
        const a = (await s.create(stack.url, ALICE)).answer;
        expect(a.status).toBe(503);
        expect(a.headers['retry-after']).toBe('5');
      },
    );
  });
});
