/** `streamChat`: a source of UI message chunks as a job's executor, and what a cancel does to it. */
import type { UIMessageChunk } from 'ai';
import { of } from 'rxjs';
import { JobRegistry, type Executor } from '../../src/core/index.js';
import { streamChat } from '../../src/ai-sdk/index.js';
import { waitFor } from '../helpers/collect.js';

const start: UIMessageChunk = { type: 'start' };
const end: UIMessageChunk = { type: 'finish' };

let registry: JobRegistry<UIMessageChunk, string>;
beforeEach(() => (registry = new JobRegistry<UIMessageChunk, string>()));
afterEach(() => registry.dispose());

async function run(
  execute: Executor<UIMessageChunk, string>,
): Promise<{ id: string; tokens: UIMessageChunk[] }> {
  const id = registry.createJob({ payload: 'p' });
  const tokens: UIMessageChunk[] = [];
  await new Promise<void>((resolve) =>
    registry.executeAndStream(id, execute).subscribe({
      next: (ev) => tokens.push(ev.token),
      error: () => resolve(),
      complete: resolve,
    }),
  );
  return { id, tokens };
}

test('every kind of source gives its chunks: ReadableStream, async iterable, Observable, array, streamText-like', async () => {
  const sources = [
    () => new ReadableStream<UIMessageChunk>({ start: (c) => (c.enqueue(start), c.enqueue(end), c.close()) }),
    async function* () {
      yield start;
      yield end;
    },
    () => of(start, end),
    () => [start, end],
    () => ({
      toUIMessageStream: () =>
        new ReadableStream<UIMessageChunk>({ start: (c) => (c.enqueue(start), c.enqueue(end), c.close()) }),
    }),
    async () => [start, end],
  ];
  for (const make of sources) {
    const { id, tokens } = await run(streamChat(make));
    expect(tokens).toEqual([start, end]);
    expect(registry.getJobState(id)).toBe('completed');
  }
});

test('a throw, a rejection, a source error or something that is no source fails the job', async () => {
  const failures = [
    () => {
      throw new Error('threw');
    },
    async () => Promise.reject(new Error('rejected')),
    async function* () {
      yield start;
      throw new Error('source failed');
    },
    () => 42 as never,
  ];
  const errors: Array<string | undefined> = [];
  for (const make of failures) {
    const { id } = await run(streamChat(make));
    errors.push(registry.getJob(id)?.error);
  }
  expect(errors).toEqual([
    'threw',
    'rejected',
    'source failed',
    expect.stringMatching(/must return a source of UI message chunks .*got number/),
  ]);
});

test('on cancel the source is read to its own end (its abort path runs), and one that never ends is cancelled after endTimeout', async () => {
  const seen = { aborted: false, readAfterCancel: 0, cancelled: false };
  // A source that ignores the signal: it keeps making chunks until it is cancelled.
  const stubborn = (_: string | undefined, { signal }: { signal: AbortSignal }) => {
    signal.addEventListener('abort', () => (seen.aborted = true));
    let timer: ReturnType<typeof setInterval> | undefined;
    return new ReadableStream<UIMessageChunk>({
      start: (c) => {
        c.enqueue(start);
        timer = setInterval(() => {
          if (seen.aborted) seen.readAfterCancel++;
          c.enqueue({ type: 'text-delta', id: 't', delta: 'x' });
        }, 5);
      },
      cancel: () => {
        seen.cancelled = true;
        clearInterval(timer);
      },
    });
  };
  const id = registry.createJob({ payload: 'p' });
  registry
    .executeAndStream(id, streamChat(stubborn, { endTimeout: 100 }))
    .subscribe({ error: () => undefined });
  await waitFor(() => registry.getJob(id)!.tokenCount > 2, 2000, 'a few chunks');
  const cancelledAt = Date.now();
  await registry.cancel(id);
  await waitFor(() => seen.cancelled, 2000, 'the cancel');
  expect(seen.aborted).toBe(true);
  expect(seen.readAfterCancel).toBeGreaterThan(0);
  expect(Date.now() - cancelledAt).toBeGreaterThanOrEqual(90);
  // Nothing it made after the cancel reached the job.
  const count = registry.getJob(id)!.tokenCount;
  expect(registry.getJob(id)).toMatchObject({ state: 'cancelled', tokenCount: count });
});
