/** The example server mounts the Durable Streams protocol at /v1/stream/: a dual-call job reads as a stream. */
import { startServer, type RunningServer } from '../../examples/inference-server.js';
import { http, postJson } from '../helpers/http.js';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

let server: RunningServer;
beforeAll(async () => {
  server = await startServer({ port: 0, logger: quiet });
}, 30_000);
afterAll(() => server?.close());

test('a job POSTed to /v1/inference reads as a Durable Stream under its id, to its close', async () => {
  const { job_id } = JSON.parse(
    (await postJson(`${server.url}/v1/inference`, { prompt: 'one two three' })).body,
  );
  let res = await http(`${server.url}/v1/stream/${job_id}?offset=-1`);
  for (let i = 0; i < 100 && res.headers['stream-closed'] !== 'true'; i++) {
    await new Promise((r) => setTimeout(r, 20));
    res = await http(`${server.url}/v1/stream/${job_id}?offset=-1`);
  }
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(JSON.parse(res.body)).toEqual(['one', 'two', 'three']);
  expect(res.headers['stream-closed']).toBe('true');
  expect(res.headers['stream-next-offset']).toMatch(/_0+3$/);
  // Not writable: the job's producer is the model.
  expect(
    (
      await http(`${server.url}/v1/stream/${job_id}`, {
        method: 'POST',
        body: '[1]',
        headers: { 'Content-Type': 'application/json' },
      })
    ).status,
  ).toBe(409);
});
