/**
 * A server for the Durable Streams tests: the dual-call routes (a word-echo model) and the Durable
 * Streams routes at /v1/stream over one registry, in memory or on Redis, on port 0. Run directly
 * (`tsx test/durable-streams/server.ts [--redis]`) it prints `URL <base url>` and serves until killed.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Observable } from 'rxjs';
import { JobRegistry } from '../../src/core/index.js';
import { createDurableStreamsHandler, type DurableStreamsOptions } from '../../src/durable-streams/index.js';
import { createJobHandler } from '../../src/http/index.js';
import { redisBackend } from '../../src/redis/index.js';

export interface Model {
  prompt: string;
  max_tokens?: number;
  delay_ms?: number;
}

export interface DurableServer {
  url: string;
  registry: JobRegistry<string, Model>;
  close(): Promise<void>;
}

/** The prompt's words in order, `max_tokens` of them, `delay_ms` apart. */
function words(p: Model): Observable<string> {
  return new Observable<string>((sub) => {
    const list = String(p.prompt).split(/\s+/).filter(Boolean);
    const n = p.max_tokens ?? list.length;
    let i = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const step = (): void => {
      if (i >= n) return sub.complete();
      sub.next(list[i % list.length]!);
      i++;
      timer = setTimeout(step, p.delay_ms ?? 0);
    };
    step();
    return () => clearTimeout(timer);
  });
}

export async function startDurableServer(
  options: {
    redisUrl?: string;
    prefix?: string;
    streams?: DurableStreamsOptions<http.IncomingMessage>;
  } = {},
): Promise<DurableServer> {
  const backend =
    options.redisUrl === undefined
      ? undefined
      : redisBackend({ url: options.redisUrl, prefix: options.prefix ?? `jrtest:ds:${process.pid}:` });
  const registry = new JobRegistry<string, Model>(backend === undefined ? {} : { backend });
  await registry.ready();
  const jobs = createJobHandler(registry, { execute: (p) => words(p!) });
  let streams: ReturnType<typeof createDurableStreamsHandler> | undefined;
  const server = http.createServer((req, res) => streams!(req, res, () => jobs(req, res)));
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  // Made once the port is known: `Location` is absolute with the origin the server was given.
  streams = createDurableStreamsHandler(registry, {
    publicOrigin: `http://127.0.0.1:${port}`,
    ...options.streams,
  });
  return {
    url: `http://127.0.0.1:${port}`,
    registry,
    close: async () => {
      streams?.close();
      jobs.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await registry.dispose();
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const redis = process.argv.includes('--redis')
    ? (process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
    : undefined;
  const pollArg = process.argv.find((a) => a.startsWith('--long-poll-ms='));
  const streams: DurableStreamsOptions<http.IncomingMessage> = {
    cors: { origin: '*' },
    ...(pollArg === undefined ? {} : { longPollTimeoutMs: Number(pollArg.slice(15)) }),
  };
  const s = await startDurableServer(redis === undefined ? { streams } : { redisUrl: redis, streams });
  console.log(`URL ${s.url}`);
  process.on('SIGTERM', () => void s.close().then(() => process.exit(0)));
}
