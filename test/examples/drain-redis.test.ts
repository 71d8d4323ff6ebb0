/**
 * The drain with Redis: two example servers share one registry. When B gets SIGTERM, a job B runs still
 * finishes (its reader on A gets `done`), and a reader that streams, from B, a job A runs gets its stream
 * ended without a terminal event and resumes on A (as behind a load balancer that took B out of
 * rotation) with nothing lost or repeated.
 */
import { EventSource, type FetchLike } from 'eventsource';
import { streamJob, type EventSourceConstructor } from '../../src/client/index.js';
import { collect, describeIf, waitFor } from '../helpers/collect.js';
import { http, parseSse, postJson } from '../helpers/http.js';
import { spawnServer, type ServerProcess } from '../helpers/processes.js';
import { REDIS_URL, dropPrefix, haveRedis, testPrefix } from '../helpers/redis.js';

const available = await haveRedis();
const prefix = testPrefix('drain');

/** One GET a reader made: which server answered, the Last-Event-ID it sent, and what it read. */
interface Hop {
  server: string;
  lastEventId: string | undefined;
  body: string;
}

/**
 * A load balancer in front of the servers, as the reader's fetch: each request goes to the first server
 * still in `rotation`, whatever URL the EventSource asks for. Records every hop with what it read.
 */
function balancer(rotation: string[], hops: Hop[]): FetchLike {
  return async (url, init) => {
    const target = rotation[0]!;
    const u = new URL(String(url));
    const hop: Hop = { server: target, lastEventId: init.headers['Last-Event-ID'], body: '' };
    hops.push(hop);
    const res = await fetch(target + u.pathname + u.search, init);
    if (res.body === null) return res;
    const [mine, theirs] = res.body.tee();
    void (async () => {
      const decoder = new TextDecoder();
      const reader = mine.getReader();
      for (;;) {
        const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
        if (done) break;
        hop.body += decoder.decode(value, { stream: true });
      }
    })();
    return new Response(theirs, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

describeIf(available)('SIGTERM with Redis: two example servers share one registry', () => {
  let A: ServerProcess;
  let B: ServerProcess;
  beforeAll(async () => {
    const env = { REDIS_URL, REDIS_PREFIX: prefix, DRAIN_MS: '3000' };
    [A, B] = await Promise.all([spawnServer(env), spawnServer(env)]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([A?.stop('SIGKILL'), B?.stop('SIGKILL')]);
    await dropPrefix(prefix);
  });

  test("B's own job finishes during its drain; a reader of A's job on B resumes on A with nothing lost", async () => {
    // A job A runs: 80 tokens, 25 ms apart (about 2 s), read from B through the balancer.
    const onA = JSON.parse(
      (
        await postJson(`${A.url}/v1/inference`, {
          prompt: 'a b c d e f g h',
          max_tokens: 80,
          delay_ms: 25,
        })
      ).body,
    );
    const rotation = [B.url, A.url];
    const hops: Hop[] = [];
    const fetchVia = balancer(rotation, hops);
    class Balanced extends EventSource {
      constructor(url: string | URL, init?: ConstructorParameters<typeof EventSource>[1]) {
        super(url, { ...init, fetch: fetchVia });
      }
    }
    const reader = collect(
      streamJob<string>(`${B.url}${onA.sse_url}`, {
        EventSource: Balanced as unknown as EventSourceConstructor,
      }),
    );

    // A job B runs (about 1 s), read from A: it must finish during B's drain.
    const onB = JSON.parse(
      (await postJson(`${B.url}/v1/inference`, { prompt: 'x y', max_tokens: 20, delay_ms: 50 })).body,
    );
    const ofB = http(A.url + onB.sse_url);

    await waitFor(() => reader.values.length >= 10, 5000, 'tokens through B');
    // The orchestrator takes B out of rotation and sends it SIGTERM.
    rotation.shift();
    const exit = B.stop('SIGTERM');

    await reader.done;
    expect(reader.error).toBeUndefined();
    expect(reader.completed).toBe(true);
    expect(reader.values.map((v) => v.seq)).toEqual(Array.from({ length: 80 }, (_, i) => i));
    expect(reader.values.map((v) => v.token)).toEqual(
      Array.from({ length: 80 }, (_, i) => 'abcdefgh'[i % 8]),
    );

    // The stream from B ended without a terminal event; the next GET went to A with the last seq seen.
    expect(hops.map((h) => h.server)).toEqual([B.url, A.url]);
    const fromB = parseSse(hops[0]!.body);
    expect(fromB.every((e) => e.event === 'token')).toBe(true);
    expect(fromB.length).toBeGreaterThanOrEqual(10);
    expect(hops[1]!.lastEventId).toBe(fromB.at(-1)!.id);
    expect(parseSse(hops[1]!.body).at(-1)).toEqual({
      id: '80',
      event: 'done',
      data: '{"state":"completed"}',
    });

    // B's own job ran to its end during the drain, and A's reader of it got every token and done.
    const events = parseSse((await ofB).body);
    expect(events.filter((e) => e.event === 'token')).toHaveLength(20);
    expect(events.at(-1)).toEqual({ id: '20', event: 'done', data: '{"state":"completed"}' });
    expect(await exit).toBe(0);
    expect(B.output()).toContain('SIGTERM: drained (1 finished, 0 cancelled); exiting');
  }, 30_000);
});
