import { Duration } from 'luxon';
import { InvalidArgumentError, JobRegistry } from '../../src/core/index.js';
import { createJobHandler } from '../../src/http/index.js';
import { createFetchHandler } from '../../src/fetch/index.js';
import { redisBackend } from '../../src/redis/index.js';
import { postJson, startTestServer } from '../helpers/http.js';

const thrown = (f: () => unknown): Error => {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('did not throw');
};

test('a misspelled option throws InvalidArgumentError naming the closest known key', () => {
  const e = thrown(() => new JobRegistry({ retnetion: 5 } as never));
  expect(e).toBeInstanceOf(InvalidArgumentError);
  expect(e.message).toMatch(/no option 'retnetion'; did you mean 'retention'\?/);
  expect(thrown(() => createJobHandler(new JobRegistry(), { heartbeatMS: 5 } as never)).message).toMatch(
    /did you mean 'heartbeatMs'/,
  );
  expect(thrown(() => createFetchHandler(new JobRegistry(), { maxconnections: 5 } as never)).message).toMatch(
    /did you mean 'maxConnections'/,
  );
  expect(thrown(() => redisBackend({ url: 'redis://x', leaseMS: 5 } as never)).message).toMatch(
    /did you mean 'leaseMs'/,
  );
  // Far from every known key: no guess, but the list.
  expect(thrown(() => new JobRegistry({ zzzzzzzz: 1 } as never)).message).toMatch(
    /no option 'zzzzzzzz' \(known: idPrefix/,
  );
});

test('durations: milliseconds, ISO 8601 strings, objects and luxon Durations; a bad one names every form', async () => {
  for (const retention of [600_000, 'PT10M', { minutes: 10 }, Duration.fromObject({ minutes: 10 })]) {
    const r = new JobRegistry({ retention });
    const id = r.createJob();
    r.updateState(id, 'completed');
    expect(r.getJob(id)?.state).toBe('completed');
    await r.dispose();
  }
  const e = thrown(() => new JobRegistry({ retention: '10m' }));
  expect(e).toBeInstanceOf(InvalidArgumentError);
  expect(e.message).toMatch(
    /retention must be milliseconds .*ISO 8601 duration \('PT10M'\).*\{ minutes: 10 \}.*luxon Duration/,
  );
  expect(thrown(() => new JobRegistry({ claimTimeout: -1 })).message).toMatch(/0 or more milliseconds/);
});

test('a handler made without its registry fails at once', () => {
  expect(thrown(() => createJobHandler({ execute: () => [] } as never))).toBeInstanceOf(InvalidArgumentError);
  expect(thrown(() => createJobHandler(undefined as never)).message).toMatch(/needs a JobRegistry/);
  expect(thrown(() => createFetchHandler(null as never)).message).toMatch(/needs a JobRegistry/);
});

test('parsePayload throwing a string keeps its message in the 400', async () => {
  const srv = await startTestServer({
    parsePayload: () => {
      throw 'prompt is required';
    },
  });
  try {
    const res = await postJson(`${srv.url}/v1/inference`, {});
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error).toEqual({
      code: 'INVALID_PAYLOAD',
      message: 'job-registry: prompt is required',
    });
  } finally {
    await srv.close();
  }
});

test('one convention for durations: every duration option takes a DurationInput; old names still work', async () => {
  const r = new JobRegistry<string>();
  // Handler, Durable Streams and Redis durations in every form.
  expect(() =>
    createJobHandler(r, {
      heartbeatMs: { seconds: 15 },
      bodyTimeoutMs: 'PT10S',
      retryMs: Duration.fromMillis(500),
      retryAfter: { seconds: 2.5 },
      streamTokens: { secret: 'x'.repeat(32), ttlMs: { minutes: 5 } },
    }),
  ).not.toThrow();
  expect(() =>
    redisBackend({ url: 'redis://127.0.0.1:1', leaseMs: { seconds: 10 }, progressInterval: 'PT1S' }),
  ).not.toThrow();
  // Retry-After is whole seconds, rounded up.
  const srv = await startTestServer<string, unknown>({
    retryAfter: { seconds: 2.5 },
    maxJobsPerPrincipal: 1,
    authenticate: () => ({ id: 'p' }),
  });
  try {
    srv.registry.createJob({ owner: 'p' });
    const refused = await postJson(`${srv.url}/v1/inference`, {});
    expect([refused.status, refused.headers['retry-after']]).toEqual([429, '3']);
  } finally {
    await srv.close();
  }
  // The old names are deprecated aliases; both at once is an error naming both.
  expect(() => createJobHandler(r, { retryAfterSeconds: 2 })).not.toThrow();
  expect(thrown(() => createJobHandler(r, { retryAfter: 2000, retryAfterSeconds: 2 })).message).toMatch(
    /give retryAfter or its old name retryAfterSeconds, not both/,
  );
  expect(
    thrown(() => redisBackend({ url: 'redis://x', progressInterval: 1, progressIntervalMs: 1 })).message,
  ).toMatch(/progressInterval or its old name progressIntervalMs/);
  expect(thrown(() => createJobHandler(r, { bodyTimeoutMs: 0 })).message).toMatch(
    /bodyTimeoutMs must be a duration > 0/,
  );
  await r.dispose();
});
