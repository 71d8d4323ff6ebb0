import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { JobRegistry, type JobRegistryOptions } from '../../src/core/index.js';
import { createJobHandler, type JobHandler, type JobHandlerOptions } from '../../src/http/index.js';

/** A registry and its handler served on 127.0.0.1, port 0. */
export interface TestServer<T, P> {
  url: string;
  port: number;
  server: Server;
  registry: JobRegistry<T, P>;
  handler: JobHandler;
  close(): Promise<void>;
}

export async function startTestServer<T = string, P = unknown>(
  handlerOptions: JobHandlerOptions<T, P> = {},
  registryOptions: JobRegistryOptions = {},
  registry: JobRegistry<T, P> = new JobRegistry<T, P>(registryOptions),
): Promise<TestServer<T, P>> {
  const handler = createJobHandler(registry, handlerOptions);
  const served = await serveHandler(handler);
  return {
    ...served,
    registry,
    handler,
    close: async () => {
      await registry.dispose();
      await served.close();
    },
  };
}

/** A handler served on 127.0.0.1, port 0; `close()` closes the handler, its connections and the server. */
export async function serveHandler(
  handler: JobHandler,
): Promise<{ url: string; port: number; server: Server; close(): Promise<void> }> {
  const server = createServer((req, res) => handler(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    close: async () => {
      handler.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A plain HTTP answer, body as text. */
export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One HTTP request; resolves when the whole body has arrived. */
export function http(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method ?? 'GET', headers: init.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode!,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/** POSTs JSON. */
export function postJson(url: string, body: unknown): Promise<Answer> {
  return http(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** One parsed SSE event. */
export interface SseMessage {
  id?: string;
  event: string;
  data: string;
}

/** Parses an SSE body (comments and retry lines ignored) the way the spec does. */
export function parseSse(text: string): SseMessage[] {
  const out: SseMessage[] = [];
  for (const block of text.split(/\r\n\r\n|\n\n|\r\r/)) {
    if (block.trim() === '') continue;
    let event = 'message';
    let id: string | undefined;
    const data: string[] = [];
    let any = false;
    for (const line of block.split(/\r\n|\n|\r/)) {
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') ((event = value), (any = true));
      else if (field === 'data') (data.push(value), (any = true));
      else if (field === 'id') ((id = value), (any = true));
    }
    if (any && data.length > 0)
      out.push(id === undefined ? { event, data: data.join('\n') } : { id, event, data: data.join('\n') });
  }
  return out;
}

/** Raw bytes over a TCP socket: sends `raw`, resolves with everything read until the server closes. */
export function rawRequest(port: number, raw: string | Buffer, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('utf8'));
    }, timeoutMs);
    socket.on('data', (c) => chunks.push(c));
    socket.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      if (chunks.length > 0) resolve(Buffer.concat(chunks).toString('utf8'));
      else reject(e);
    });
    socket.write(raw);
  });
}

/** A TCP proxy in front of a port that can cut every connection through it. */
export interface CuttingProxy {
  port: number;
  /** Bytes that went from server to clients so far. */
  bytes: number;
  cutAll(): void;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number): Promise<CuttingProxy> {
  const pairs = new Set<[Socket, Socket]>();
  const state = { bytes: 0 };
  const server: TcpServer = createTcpServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    client.pipe(upstream);
    upstream.on('data', (c: Buffer) => {
      state.bytes += c.length;
      client.write(c);
    });
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('close', drop);
    upstream.on('close', drop);
    client.on('error', drop);
    upstream.on('error', drop);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    get bytes() {
      return state.bytes;
    },
    cutAll: () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
    },
    close: async () => {
      for (const [a, b] of pairs) (a.destroy(), b.destroy());
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A response whose headers have arrived, its body still coming (an SSE stream, a long-poll). */
export interface OpenResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body received so far. */
  text(): string;
  /** Resolves when the body has ended. */
  ended: Promise<void>;
  close(): void;
}

/** Sends a request and resolves once the response's headers arrive; the body goes on arriving. */
export function openResponse(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<OpenResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method ?? 'GET', headers: init.headers }, (res) => {
      let body = '';
      const ended = new Promise<void>((done) => {
        res.on('end', done);
        res.on('close', done);
      });
      res.on('data', (c: Buffer) => (body += c.toString()));
      resolve({
        status: res.statusCode!,
        headers: res.headers,
        text: () => body,
        ended,
        close: () => {
          res.destroy();
          req.destroy();
        },
      });
    });
    req.on('error', reject);
    req.end(init.body);
  });
}
