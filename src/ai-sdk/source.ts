/**
 * A source of UI message chunks (what `streamText` makes, or any stream of them) run as a job's executor.
 * The point is what happens on cancel: the job's signal aborts (pass it to `streamText` as its
 * `abortSignal`), and the source is read on to its end instead of being dropped, so it can finish its own
 * way: `streamText` sends its `abort` chunk and calls the `onEnd` / `onFinish` of `toUIMessageStream` with
 * `isAborted` and the partial message. What it reads after the cancel goes nowhere (the job has ended); a
 * source that does not end within `endTimeout` is cancelled. Imports no `node:` module, and `ai` only for
 * its types.
 */
import type { UIMessageChunk } from 'ai';
import { Observable, from, isObservable, type Subscription } from 'rxjs';
import { toMillis, type DurationInput } from '../core/duration.js';
import { InvalidArgumentError } from '../core/errors.js';
import type { ExecutionContext } from '../core/types.js';

/** What `streamText` returns, as far as a chat job needs it: its UI message stream. */
export interface UIMessageStreamSource {
  /** The UI message stream (of `streamText`'s result: the chunks `useChat` reads). */
  toUIMessageStream(): ReadableStream<UIMessageChunk> | AsyncIterable<UIMessageChunk>;
}

/**
 * What a chat executor may return (or a Promise of it): `streamText`'s result, its `toUIMessageStream()`,
 * any `ReadableStream` or async iterable (an `async function*`) of chunks, an `Observable`, or an array.
 */
export type ChatSource =
  | UIMessageStreamSource
  | ReadableStream<UIMessageChunk>
  | AsyncIterable<UIMessageChunk>
  | Observable<UIMessageChunk>
  | Iterable<UIMessageChunk>;

/** Options of {@link streamChat}. */
export interface StreamChatOptions {
  /**
   * How long a cancelled answer's source may take to end after the job's signal aborted (`streamText`
   * sends its `abort` chunk and calls `onEnd` / `onFinish` meanwhile) before it is cancelled.
   * @defaultValue 5 s
   */
  endTimeout?: DurationInput;
}

/**
 * Turns a function that makes a source of UI message chunks into a job executor. The source runs as the
 * job's producer; on cancel the job's `signal` aborts and the source is read to its end (bounded by
 * `endTimeout`), so `streamText` with `abortSignal: signal` stops its model at once and still reports
 * `isAborted` with the partial text to `onEnd` / `onFinish`. A throw, a rejection or a source's error fails
 * the job.
 *
 * @example
 * // streamText behind the dual-call routes: each job's tokens are its UI message chunks.
 * const jobs = createJobHandler(registry, {
 *   execute: streamChat((p: { prompt: string }, { signal }) =>
 *     streamText({ model, prompt: p.prompt, abortSignal: signal }).toUIMessageStream({
 *       onEnd: ({ isAborted, responseMessage }) => save(responseMessage, isAborted),
 *     }),
 *   ),
 * });
 * @throws InvalidArgumentError for a malformed `endTimeout`.
 */
export function streamChat<P, C extends ExecutionContext = ExecutionContext>(
  run: (payload: P, context: C) => ChatSource | PromiseLike<ChatSource>,
  options: StreamChatOptions = {},
): (payload: P, context: C) => Observable<UIMessageChunk> {
  if (typeof run !== 'function') throw new InvalidArgumentError('streamChat needs a function');
  const endMs = toMillis(options.endTimeout ?? 5000, 'endTimeout');
  return (payload, context) => chunksOf(() => run(payload, context), endMs);
}

/** Reads one step of a source, and cancels it. */
interface Pull {
  read(): Promise<IteratorResult<UIMessageChunk>>;
  cancel(): void;
}

/** The chunks of the source `make` returns, as an Observable whose unsubscribe drains, then cancels. */
export function chunksOf(
  make: () => ChatSource | PromiseLike<ChatSource>,
  endMs: number,
): Observable<UIMessageChunk> {
  return new Observable<UIMessageChunk>((sub) => {
    let stopped = false;
    let ended = false;
    let pull: Pull | undefined;
    let inner: Subscription | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const end = (): void => {
      ended = true;
      if (timer !== undefined) clearTimeout(timer);
    };
    const pump = async (): Promise<void> => {
      const made = await make();
      const source = pullOf(made);
      if (source === undefined) {
        // An Observable or an array: unsubscribing is its cancel.
        if (!stopped)
          inner = from(made as Observable<UIMessageChunk> | Iterable<UIMessageChunk>).subscribe(sub);
        return end();
      }
      pull = source;
      if (stopped) startTimer();
      for (;;) {
        const step = await source.read();
        if (step.done === true) break;
        if (!stopped) sub.next(step.value);
      }
      end();
      if (!stopped) sub.complete();
    };
    const startTimer = (): void => {
      if (ended || timer !== undefined || pull === undefined) return;
      const cancel = pull.cancel;
      timer = setTimeout(cancel, endMs);
      // Never keeps a process alive by itself (runtimes without unref have no such problem).
      (timer as { unref?: () => void }).unref?.();
    };
    pump().catch((e: unknown) => {
      end();
      // After a cancel the source's error (an AbortError, most often) is just how it ended: the job
      // already has its end, and nobody reads on.
      if (!stopped) sub.error(e);
    });
    return () => {
      if (ended) return inner?.unsubscribe();
      stopped = true;
      startTimer();
    };
  });
}

/** How to read a source chunk by chunk, or `undefined` for an Observable or an array (read by rxjs). */
function pullOf(source: ChatSource): Pull | undefined {
  let s: unknown = source;
  if (
    s !== null &&
    typeof s === 'object' &&
    typeof (s as UIMessageStreamSource).toUIMessageStream === 'function'
  )
    s = (s as UIMessageStreamSource).toUIMessageStream();
  if (s === null || typeof s !== 'object')
    throw new InvalidArgumentError(
      `a chat executor must return a source of UI message chunks (streamText's result, a ReadableStream, an async iterable, an Observable), got ${s === null ? 'null' : typeof s}`,
    );
  if (typeof (s as ReadableStream).getReader === 'function') {
    const reader = (s as ReadableStream<UIMessageChunk>).getReader();
    return {
      read: () => reader.read() as Promise<IteratorResult<UIMessageChunk>>,
      cancel: () =>
        void reader
          .cancel(new Error('job-registry: the chat answer did not end in time after its cancel'))
          .catch(cancelled),
    };
  }
  if (typeof (s as AsyncIterable<UIMessageChunk>)[Symbol.asyncIterator] === 'function') {
    const it = (s as AsyncIterable<UIMessageChunk>)[Symbol.asyncIterator]();
    return {
      read: () => it.next(),
      cancel: () => void it.return?.()?.catch(cancelled),
    };
  }
  if (isObservable(s) || typeof (s as Iterable<UIMessageChunk>)[Symbol.iterator] === 'function')
    return undefined;
  throw new InvalidArgumentError(
    "a chat executor must return a source of UI message chunks (streamText's result, a ReadableStream, an async iterable, an Observable)",
  );
}

/** A source that rejects its own cancel has failed already; its reader saw that (or nobody reads on). */
function cancelled(): void {
  return;
}
