import { request } from 'node:http';
import { waitFor } from '../helpers/collect.js';
import { parseSse, startTestServer, type TestServer } from '../helpers/http.js';

let srv: TestServer<string, unknown>;
afterEach(() => srv.close());

test('/v1/events carries coalesced progress events with token counts, only after the snapshot', async () => {
  srv = await startTestServer<string, unknown>({ heartbeatMs: 0 }, { progressInterval: 50 });
  const before = srv.registry.createJob();
  srv.registry.emit(before, 'x');
  let text = '';
  const req = request(`${srv.url}/v1/events`);
  req.on('response', (res) => res.on('data', (c: Buffer) => (text += c.toString())));
  req.end();
  await waitFor(() => text.includes('event: snapshot'), 5000, 'the snapshot');
  for (let i = 0; i < 300; i++) srv.registry.emit(before, 't');
  await waitFor(() => text.includes('event: progress'), 5000, 'a progress event');
  srv.registry.updateState(before, 'completed');
  await waitFor(() => text.includes('event: stateChanged'), 5000, 'the end');
  req.destroy();
  const events = parseSse(text);
  expect(events[0]!.event).toBe('snapshot');
  expect(JSON.parse(events[0]!.data)[0].token_count).toBe(1);
  const progress = events.filter((e) => e.event === 'progress').map((e) => JSON.parse(e.data));
  expect(progress.length).toBeGreaterThanOrEqual(1);
  expect(progress.length).toBeLessThan(5);
  expect(progress.at(-1)).toMatchObject({ job_id: before, token_count: 301 });
  expect(typeof progress[0].at).toBe('string');
  expect(events.at(-1)!.event).toBe('stateChanged');
});
