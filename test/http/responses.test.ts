import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { Observable } from 'rxjs';
import { JobRegistry, PublicError } from '../../src/core/index.js';
import { createJobHandler, createResponsesHandler, type JobHandler } from '../../src/http/index.js';
import { waitFor } from '../helpers/collect.js';

type Payload = { words: string[]; delayMs: number; failAfter?: number };

/** A model that emits the input's words, one per `delayMs`, and can fail after some. */
const model = (p: Payload | undefined) =>
  new Observable<string>((sub) => {
    let i = 0;
    const timer = setInterval(() => {
      if (p!.failAfter !== undefined && i === p!.failAfter)
        return sub.error(new PublicError('model overloaded'));
      if (i === p!.words.length) return sub.complete();
      sub.next((i === 0 ? '' : ' ') + p!.words[i++]);
    }, p!.delayMs);
    return () => clearInterval(timer);
  });

let registry: JobRegistry<string, Payload>;
let responses: JobHandler;
let jobs: JobHandler;
let server: Server;
let client: OpenAI;

beforeEach(async () => {
  registry = new JobRegistry<string, Payload>();
  responses = createResponsesHandler(registry, {
    execute: model,
    toPayload: (req) => {
      if (typeof req.input !== 'string') throw new PublicError('input must be a string');
      return {
        words: req.input.split(/\s+/).slice(0, req.max_output_tokens ?? Infinity),
        delayMs: Number(req.metadata?.delay_ms ?? 5),
        ...(req.metadata?.fail_after !== undefined ? { failAfter: Number(req.metadata.fail_after) } : {}),
      };
    },
    heartbeatMs: 0,
  });
  jobs = createJobHandler(registry, { heartbeatMs: 0 });
  server = createServer((req, res) => responses(req, res, () => jobs(req, res)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  client = new OpenAI({
    apiKey: 'unused',
    baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    maxRetries: 0,
  });
});

afterEach(async () => {
  responses.close();
  jobs.close();
  await registry.dispose();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const words = Array.from({ length: 40 }, (_, i) => `w${i}`);

test('the openai client creates a background response and streams it to response.completed', async () => {
  const stream = await client.responses.create({
    model: 'sim-1',
    input: 'alpha beta gamma',
    background: true,
    stream: true,
  });
  const types: string[] = [];
  const seqs: number[] = [];
  let text = '';
  let final: OpenAI.Responses.Response | undefined;
  for await (const event of stream) {
    types.push(event.type);
    seqs.push(event.sequence_number);
    if (event.type === 'response.output_text.delta') text += event.delta;
    if (event.type === 'response.completed') final = event.response;
  }
  expect(types.slice(0, 4)).toEqual([
    'response.created',
    'response.in_progress',
    'response.output_item.added',
    'response.content_part.added',
  ]);
  expect(types.slice(-4)).toEqual([
    'response.output_text.done',
    'response.content_part.done',
    'response.output_item.done',
    'response.completed',
  ]);
  expect(seqs).toEqual(seqs.map((_, i) => i));
  expect(text).toBe('alpha beta gamma');
  expect(final).toMatchObject({
    status: 'completed',
    model: 'sim-1',
    background: true,
    output_text: 'alpha beta gamma',
  });
  expect(final!.id).toMatch(/^resp_job-/);
});

test('a dropped stream resumes with starting_after: no delta lost or repeated', async () => {
  const first = await client.responses.create({
    model: 'sim-1',
    input: words.join(' '),
    background: true,
    stream: true,
    metadata: { delay_ms: '10' },
  });
  let id = '';
  let last = -1;
  const deltas: Array<[number, string]> = [];
  for await (const event of first) {
    if (event.type === 'response.created') id = event.response.id;
    last = event.sequence_number;
    if (event.type === 'response.output_text.delta') deltas.push([event.sequence_number, event.delta]);
    if (deltas.length === 12) {
      first.controller.abort();
      break;
    }
  }
  const resumed = await client.responses.retrieve(id, { stream: true, starting_after: last });
  let completed = false;
  for await (const event of resumed) {
    expect(event.sequence_number).toBeGreaterThan(last);
    last = event.sequence_number;
    if (event.type === 'response.output_text.delta') deltas.push([event.sequence_number, event.delta]);
    if (event.type === 'response.completed') completed = true;
  }
  expect(completed).toBe(true);
  expect(deltas.map(([s]) => s)).toEqual(words.map((_, i) => i + 4));
  expect(deltas.map(([, d]) => d).join('')).toBe(words.join(' '));
});

test('cancel a running response: the object says cancelled, and its stream ends', async () => {
  const created = await client.responses.create({
    model: 'sim-1',
    input: words.join(' '),
    background: true,
    metadata: { delay_ms: '20' },
  });
  expect(['queued', 'in_progress']).toContain(created.status);
  const stream = await client.responses.retrieve(created.id, { stream: true });
  const types: string[] = [];
  const reading = (async () => {
    for await (const event of stream) types.push(event.type);
  })();
  // Running: its first word has come, and the other 39 take 20 ms each.
  await waitFor(() => types.includes('response.output_text.delta'), 5000, 'the first word');
  const cancelled = await client.responses.cancel(created.id);
  expect(cancelled.status).toBe('cancelled');
  await reading;
  expect(types.at(-1)).toBe('response.cancelled');
  expect((await client.responses.retrieve(created.id)).status).toBe('cancelled');
});

test('retrieve a finished response: status, output text and echoed model; a failed one carries its error', async () => {
  const created = await client.responses.create({ model: 'sim-2', input: 'one two', background: true });
  let done = await client.responses.retrieve(created.id);
  for (let i = 0; i < 200 && done.status !== 'completed'; i++) {
    await new Promise((r) => setTimeout(r, 10));
    done = await client.responses.retrieve(created.id);
  }
  expect(done).toMatchObject({ status: 'completed', model: 'sim-2', output_text: 'one two' });
  expect(done.output[0]).toMatchObject({ type: 'message', role: 'assistant', status: 'completed' });

  const failing = await client.responses.create({
    model: 'sim-2',
    input: 'a b c',
    background: true,
    stream: true,
    metadata: { fail_after: '1' },
  });
  const types: string[] = [];
  for await (const event of failing) {
    types.push(event.type);
    if (event.type === 'response.failed')
      expect(event.response.error).toEqual({ code: 'server_error', message: 'model overloaded' });
  }
  expect(types.at(-1)).toBe('response.failed');
  await expect(client.responses.retrieve('resp_job-nope')).rejects.toMatchObject({ status: 404 });
  await expect(
    client.responses.create({ model: 'x', input: [] as never, background: true }),
  ).rejects.toMatchObject({
    status: 400,
  });
});
