/**
 * The published `@durable-streams/client` follows a job of the dual-call routes as a Durable Stream: from
 * its first token to its close, and again from an offset saved before a drop, with nothing lost or
 * repeated. Also the fetch handler on the same registry.
 */
import { stream, type JsonBatch } from '@durable-streams/client';
import { JobRegistry } from '../../src/core/index.js';
import { createFetchDurableStreamsHandler } from '../../src/durable-streams/index.js';
import { startDurableServer, type DurableServer } from './server.js';

const WORDS = Array.from({ length: 12 }, (_, i) => `w${i}`);

async function submit(server: DurableServer, delayMs: number): Promise<string> {
  const res = await fetch(`${server.url}/v1/inference`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: WORDS.join(' '), delay_ms: delayMs }),
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { job_id: string }).job_id;
}

/** Reads with the client until `stop` says so or the stream closes; the items and the last offset. */
function follow(
  url: string,
  offset: string,
  live: 'sse' | 'long-poll',
  stop: (items: string[]) => boolean = () => false,
): Promise<{ items: string[]; offset: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const items: string[] = [];
    let last = offset;
    stream<string>({ url, offset, live })
      .then((res) => {
        res.subscribeJson((batch: JsonBatch<string>) => {
          items.push(...batch.items);
          last = batch.offset;
          if (batch.streamClosed || stop(items)) {
            res.cancel();
            resolve({ items, offset: last, closed: batch.streamClosed });
          }
        });
      })
      .catch(reject);
  });
}

describe('@durable-streams/client reading a dual-call job', () => {
  let server: DurableServer;
  beforeAll(async () => {
    server = await startDurableServer();
  });
  afterAll(async () => {
    await server.close();
  });

  test.each(['sse', 'long-poll'] as const)(
    'follows a job from its first token to its close (%s)',
    async (live) => {
      const id = await submit(server, 20);
      const got = await follow(`${server.url}/v1/stream/${id}`, '-1', live);
      expect(got.items).toEqual(WORDS);
      expect(got.closed).toBe(true);
      expect(server.registry.getJobState(id)).toBe('completed');
    },
  );

  test('resumes from a saved offset after a drop, with nothing lost or repeated', async () => {
    const id = await submit(server, 30);
    const url = `${server.url}/v1/stream/${id}`;
    const first = await follow(url, '-1', 'sse', (items) => items.length >= 4);
    expect(first.closed).toBe(false);
    expect(first.items).toEqual(WORDS.slice(0, first.items.length));
    const rest = await follow(url, first.offset, 'long-poll');
    expect([...first.items, ...rest.items]).toEqual(WORDS);
    expect(rest.closed).toBe(true);
  });

  test('a job id that does not exist is 404', async () => {
    const res = await fetch(`${server.url}/v1/stream/job-00000000-0000-4000-8000-000000000000?offset=-1`);
    expect(res.status).toBe(404);
  });
});

describe('createFetchDurableStreamsHandler', () => {
  test('creates, appends bytes, reads them back exactly, and closes', async () => {
    const registry = new JobRegistry();
    const handler = createFetchDurableStreamsHandler(registry);
    const url = 'http://localhost/v1/stream/bytes';
    const put = await handler(
      new Request(url, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' } }),
    );
    expect(put.status).toBe(201);
    const bytes = new Uint8Array([0, 1, 127, 128, 200, 255, 10, 13]);
    const post = await handler(
      new Request(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/octet-stream', 'Stream-Closed': 'true' },
        body: bytes,
      }),
    );
    expect(post.status).toBe(204);
    expect(post.headers.get('Stream-Closed')).toBe('true');
    const get = await handler(new Request(`${url}?offset=-1`));
    expect(get.status).toBe(200);
    expect(new Uint8Array(await get.arrayBuffer())).toEqual(bytes);
    expect(get.headers.get('Stream-Closed')).toBe('true');
    expect(get.headers.get('Stream-Next-Offset')).toBe(post.headers.get('Stream-Next-Offset'));
    handler.close();
    await registry.dispose();
  });
});
