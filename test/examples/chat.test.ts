/**
 * The example server's `/api/chat` with the AI SDK's own chat as the client: the simulated model behind
 * `useChat`'s routes, its knobs in the request body, its jobs on `/v1/jobs` with their key, under the
 * server's API keys.
 */
import { JobChatTransport } from '../../src/ai-sdk/client.js';
import { startServer, type RunningServer } from '../../examples/inference-server.js';
import { waitFor } from '../helpers/collect.js';
import { TestChat, textOf } from '../helpers/chat.js';
import { http } from '../helpers/http.js';

const KEY = 'chat-example-key-0123456789abcdef';
const auth = { authorization: `Bearer ${KEY}` };
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

let server: RunningServer;
beforeAll(async () => {
  server = await startServer({ port: 0, apiKeys: [KEY], logger: quiet });
}, 30_000);
afterAll(() => server?.close());

const chatOf = (id: string, messages: TestChat['messages'] = []): TestChat =>
  new TestChat({
    id,
    messages,
    transport: new JobChatTransport({ api: `${server.url}/api/chat`, headers: auth }),
  });

test("a chat's answer is the last user message's words, with spaces; the job is on /v1/jobs with its key", async () => {
  const chat = chatOf('example-1');
  await chat.sendMessage({ text: 'earlier words' });
  await chat.sendMessage({ text: 'the quick  brown fox' }, { body: { max_tokens: 6 } });
  expect(chat.status).toBe('ready');
  expect(chat.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
  expect(textOf(chat.messages[1])).toBe('earlier words');
  // Cycling, as the simulated model does on /v1/inference.
  expect(textOf(chat.messages[3])).toBe('the quick brown fox the quick');
  const jobs = JSON.parse((await http(`${server.url}/v1/jobs`, { headers: auth })).body) as Array<{
    key?: string;
    state: string;
  }>;
  const principal = server.principals[0]!;
  expect(jobs.filter((j) => j.key === `${principal}/example-1`).map((j) => j.state)).toEqual([
    'completed',
    'completed',
  ]);
});

test('delay_ms paces the answer so it can be stopped from another tab; fail_after fails it', async () => {
  const chat = chatOf('example-2');
  const sent = chat.sendMessage(
    { text: 'one two three four five six' },
    { body: { delay_ms: 50, max_tokens: 40 } },
  );
  await waitFor(() => textOf(chat.messages[1]).split(' ').length >= 2, 5000, 'two words');
  expect(await new JobChatTransport({ api: `${server.url}/api/chat`, headers: auth }).stop('example-2')).toBe(
    true,
  );
  await sent;
  expect(chat.status).toBe('ready');
  expect(textOf(chat.messages[1]).split(' ').length).toBeLessThan(40);

  const failing = chatOf('example-3');
  await failing.sendMessage({ text: 'a b c d' }, { body: { fail_after: 2 } });
  expect(failing.status).toBe('error');
  expect(failing.error?.message).toBe('simulated failure');
  expect(textOf(failing.messages[1])).toBe('a b');
});

test('bad knobs and a chat without a user message are 400 with the reason; no key is 401', async () => {
  const post = (body: unknown, headers: Record<string, string> = auth) =>
    http(`${server.url}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
  const user = { id: 'u', role: 'user', parts: [{ type: 'text', text: 'hi' }] };
  const tooSlow = await post({ id: 'example-4', messages: [user], delay_ms: -1 });
  expect(tooSlow.status).toBe(400);
  expect(JSON.parse(tooSlow.body).error.message).toContain('"delay_ms" must be a whole number');
  const empty = await post({ id: 'example-4', messages: [] });
  expect(JSON.parse(empty.body).error).toMatchObject({ code: 'INVALID_PAYLOAD' });
  expect((await post({ id: 'example-4', messages: [user] }, {})).status).toBe(401);
});
