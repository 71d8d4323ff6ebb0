/**
 * The example server's `/api/chat` on Redis when the process running an answer dies: the answer's owner
 * is a server in a child process, the chat resumes on another server of the same Redis, and SIGKILL of
 * the owner ends the resumed reader with an `error` chunk and `[DONE]` within its lease (the AI SDK's
 * chat then ends in `error`, not hanging), as the issue's `resumable-stream` comparison asks.
 */
import { JobChatTransport } from '../../src/ai-sdk/client.js';
import { startServer, type RunningServer } from '../../examples/inference-server.js';
import { waitFor } from '../helpers/collect.js';
import { TestChat, textOf } from '../helpers/chat.js';
import { openResponse } from '../helpers/http.js';
import { spawnServer, type ServerProcess } from '../helpers/processes.js';
import { dropPrefix, haveRedis, REDIS_URL, testPrefix } from '../helpers/redis.js';

const LEASE_MS = 1000;
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

let owner: ServerProcess | undefined;
let other: RunningServer | undefined;
let prefix: string;

beforeAll(async () => {
  if (!(await haveRedis())) return;
  prefix = testPrefix('chat-death');
  owner = await spawnServer({ REDIS_URL, REDIS_PREFIX: prefix, REDIS_LEASE_MS: String(LEASE_MS) });
  other = await startServer({
    port: 0,
    logger: quiet,
    redisUrl: REDIS_URL,
    redisPrefix: prefix,
    leaseMs: LEASE_MS,
  });
}, 30_000);

afterAll(async () => {
  await owner?.stop('SIGKILL');
  await other?.close();
  if (other !== undefined) await dropPrefix(prefix);
});

const words = Array.from({ length: 400 }, (_, i) => `w${i}`).join(' ');

test('SIGKILL of the owner ends the resumed reader on another server with an error chunk within the lease', async () => {
  if (owner === undefined) return;
  // The answer runs on the owner; the first client reads it there.
  const first = await openResponse(`${owner.url}/api/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      id: 'dies',
      trigger: 'submit-message',
      messages: [{ id: 'u1', role: 'user', parts: [{ type: 'text', text: words }] }],
      delay_ms: 20,
    }),
  });
  expect(first.status).toBe(200);
  await waitFor(() => first.text().split('text-delta').length > 4, 10_000, 'a few words');
  // A reload: the SDK's chat resumes on the other server.
  const chat = new TestChat({
    id: 'dies',
    transport: new JobChatTransport({ api: `${other!.url}/api/chat` }),
  });
  const resumed = chat.resumeStream();
  await waitFor(() => textOf(chat.messages.at(-1)).includes('w5'), 10_000, 'the resumed answer');
  // And a raw reader there, to see the wire.
  const wire = await openResponse(`${other!.url}/api/chat/dies/stream`);
  expect(wire.status).toBe(200);
  const killedAt = Date.now();
  await owner.stop('SIGKILL');
  owner = undefined;
  await resumed;
  const tookMs = Date.now() - killedAt;
  expect(chat.status).toBe('error');
  expect(chat.error?.message).toMatch(/job failed|stopped renewing its lease/);
  // Its words so far are kept, in order, none repeated.
  const text = textOf(chat.messages.at(-1));
  const got = text.split(' ').filter((w) => w !== '');
  expect(got).toEqual(got.map((_, i) => `w${i}`));
  // The reaper confirms a lease missing for a whole lease before it ends the owner's jobs: about two
  // leases from the kill, plus its sweep and the reader's wake-up.
  expect(tookMs).toBeLessThan(4 * LEASE_MS + 2000);
  // The raw stream says the same on the wire: an error chunk, then [DONE].
  await wire.ended;
  const data = wire
    .text()
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => l.slice(6));
  expect(data.at(-1)).toBe('[DONE]');
  expect(JSON.parse(data.at(-2)!)).toEqual({ type: 'error', errorText: expect.any(String) });
  // No live answer is left for the chat.
  expect((await openResponse(`${other!.url}/api/chat/dies/stream`)).status).toBe(204);
}, 30_000);
