/**
 * The example server's `/v1/responses`, with the official `openai` client as the only client: the
 * simulated model behind OpenAI's background mode, under the server's API keys and limits.
 */
import OpenAI from 'openai';
import { startServer, type RunningServer } from '../../examples/inference-server.js';

const KEY = 'responses-key-0123456789abcdef';
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

let server: RunningServer;
let client: OpenAI;
beforeAll(async () => {
  server = await startServer({ port: 0, apiKeys: [KEY], logger: quiet });
  client = new OpenAI({ apiKey: KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
}, 30_000);
afterAll(() => server?.close());

test('create in background and stream, drop, resume with starting_after, retrieve; cancel another', async () => {
  const words = Array.from({ length: 30 }, (_, i) => `w${i}`);
  const stream = await client.responses.create({
    model: 'sim-1',
    input: words.join(' '),
    background: true,
    stream: true,
    metadata: { delay_ms: '10' },
  });
  let id = '';
  let last = -1;
  let text = '';
  for await (const event of stream) {
    if (event.type === 'response.created') id = event.response.id;
    last = event.sequence_number;
    if (event.type === 'response.output_text.delta') text += event.delta;
    if (text.split(' ').length === 10) break; // drops the connection
  }
  const resumed = await client.responses.retrieve(id, { stream: true, starting_after: last });
  let final: OpenAI.Responses.Response | undefined;
  for await (const event of resumed) {
    expect(event.sequence_number).toBe(++last);
    if (event.type === 'response.output_text.delta') text += event.delta;
    if (event.type === 'response.completed') final = event.response;
  }
  expect(text).toBe(words.join(' '));
  expect(final).toMatchObject({ id, status: 'completed', model: 'sim-1', output_text: words.join(' ') });
  // The same job, seen through the dual-call API of the same server.
  expect(server.registry.getJob(id.slice('resp_'.length))?.tokenCount).toBe(30);
  expect(await client.responses.retrieve(id)).toMatchObject({ status: 'completed', output_text: text });

  const long = await client.responses.create({
    model: 'sim-1',
    input: 'a long answer',
    max_output_tokens: 5000,
    background: true,
    metadata: { delay_ms: '20' },
  });
  expect(['queued', 'in_progress']).toContain(long.status);
  expect((await client.responses.cancel(long.id)).status).toBe('cancelled');
});

test("the server's limits and keys: 400 that names the field and the limit, 401 without the key", async () => {
  const tooLong = client.responses.create({
    model: 'sim-1',
    input: 'a',
    max_output_tokens: 10_001,
    background: true,
  });
  await expect(tooLong).rejects.toMatchObject({
    status: 400,
    message: expect.stringMatching(
      /"max_output_tokens" must be a whole number from 0 to 10000 .*MAX_TOKENS_PER_JOB/,
    ),
  });
  await expect(
    client.responses.create({ model: 'sim-1', input: 'a', background: true, metadata: { delay_ms: 'soon' } }),
  ).rejects.toMatchObject({
    status: 400,
    message: expect.stringMatching(/"metadata\.delay_ms" must be a whole number/),
  });
  const stranger = new OpenAI({
    apiKey: 'not-a-key-of-this-server',
    baseURL: `${server.url}/v1`,
    maxRetries: 0,
  });
  await expect(
    stranger.responses.create({ model: 'sim-1', input: 'a', background: true }),
  ).rejects.toMatchObject({
    status: 401,
  });
});
