import { Subscription, type Observable, type Observer, type TeardownLogic } from 'rxjs';
import { JobCancelledError, JobFailedError } from '../core/errors.js';
import type { TokenEvent } from '../core/types.js';
import type { SseSink } from './sink.js';

/** How a stream writes a job's tokens and its end (the dual-call SSE wire, or a preset's). */
export interface StreamEncoder<T> {
  /** One token's SSE event(s). */
  token(ev: TokenEvent<T>): string;
  /**
   * The job's end: `count` is its token count (the terminal event's id). May be asynchronous (a preset
   * that repeats the whole output at the end reads it first).
   */
  end(
    state: 'completed' | 'failed' | 'cancelled',
    error: string | undefined,
    count: number,
  ): string | Promise<string>;
}

/**
 * What token streams need from their handler. One object serves every stream of a handler (a stream
 * holds only its own state), so it takes the stream's job id, or the stream itself.
 */
export interface TokenStreamOptions<T> {
  encoder: StreamEncoder<T>;
  /** Unsent bytes on one connection past which the stream stops reading from the job until the client took them. */
  maxBufferedBytes: number;
  /** Reads the job's tokens after a seq (or from the start of what is kept). */
  tokens(jobId: string, after: number | undefined): Observable<TokenEvent<T>>;
  /** The text a client sees of a job's failure or cancel (a private failure is redacted). */
  errorText(e: JobFailedError | JobCancelledError): string;
  /** The terminal status of a job whose token stream completed (dispose() completes streams of cancelled jobs). */
  finalState(jobId: string): { state: string; error?: string | undefined } | 'closing' | undefined;
  /** Holds the job against retention while a stream is paused; returns the release. */
  hold(jobId: string): () => void;
  /** The stream ended (once). */
  onClose(stream: TokenStream<T>): void;
}

// Streams with bytes to write, flushed together in one microtask: no closure per stream.
let dirty: Array<TokenStream<unknown>> = [];
const flushDirty = (): void => {
  const streams = dirty;
  dirty = [];
  for (const s of streams) s.flush();
};

const SCHEDULED = 1;
const PAUSED = 2;
const LISTENING = 4;
const CLOSED = 8;

/**
 * One SSE response streaming one job. Tokens that arrive in the same tick go out in one `write`. When the
 * response's unsent bytes pass `maxBufferedBytes` the stream unsubscribes from the job and resubscribes
 * after the last seq it wrote once the client took them, so a slow reader costs the server a bounded buffer.
 */
export class TokenStream<T> {
  private subscription: Reading<T> | undefined;
  private pending = '';
  private lastSeq: number | undefined;
  private release: (() => void) | undefined;
  /** SCHEDULED, PAUSED, LISTENING and CLOSED, in one number: a stream is one small object. */
  private flags = 0;

  constructor(
    private readonly sink: SseSink,
    private readonly options: TokenStreamOptions<T>,
    readonly jobId: string,
    after: number | undefined,
    /** The handler's own bookkeeping for this stream (e.g. its place in the limits). */
    readonly ticket?: unknown,
  ) {
    this.lastSeq = after;
    sink.onClose(this);
  }

  start(): void {
    this.subscribe();
  }

  /** Queues a raw chunk (e.g. a heartbeat) behind what is pending. */
  writeRaw(chunk: string): void {
    if ((this.flags & CLOSED) !== 0) return;
    this.pending += chunk;
    this.schedule();
  }

  /**
   * Ends the stream without a terminal event (the client went away, or the handler closes): what is
   * pending is written and the response ends, so a client still there resumes elsewhere.
   */
  close(): void {
    this.end('');
  }

  private subscribe(): void {
    // Held before the subscription starts: a replay can pause it (too much unsent) from inside itself.
    const sub = new Reading<T>(this);
    this.subscription = sub;
    try {
      this.options.tokens(this.jobId, this.lastSeq).subscribe(sub);
    } catch (e) {
      this.onError(e);
    }
  }

  /** @internal */
  onToken(ev: TokenEvent<T>): void {
    if ((this.flags & CLOSED) !== 0) return;
    this.pending += this.options.encoder.token(ev);
    this.lastSeq = ev.seq;
    this.schedule();
    // A long replay stops here, not at the end of the job: it goes on once this much is written out.
    if (this.pending.length > this.options.maxBufferedBytes) this.pause();
  }

  // The terminal event's id is the job's token count (last seq + 1): a client that resumes from it has
  // seen the end, and gets 204.
  private endId(): number {
    return this.lastSeq === undefined ? 0 : this.lastSeq + 1;
  }

  /** @internal */
  onComplete(): void {
    const final = this.options.finalState(this.jobId);
    if (final === 'closing') this.end('');
    else if (final !== undefined && final.state !== 'completed')
      this.finish(final.state === 'failed' ? 'failed' : 'cancelled', final.error ?? final.state);
    else this.finish('completed', undefined);
  }

  /** @internal */
  onError(e: unknown): void {
    if (e instanceof JobFailedError || e instanceof JobCancelledError)
      this.finish(e instanceof JobFailedError ? 'failed' : 'cancelled', this.options.errorText(e));
    // Anything else (the replay point expired, the backend failed) is not the job's end: close without
    // a terminal event, so the client resumes and gets the real answer (410, 404, 503).
    else this.end('');
  }

  private finish(state: 'completed' | 'failed' | 'cancelled', error: string | undefined): void {
    const last = this.options.encoder.end(state, error, this.endId());
    if (typeof last === 'string') this.end(last);
    // An end that cannot be encoded is not the job's end: the client resumes and asks again.
    else
      last.then(
        (chunk) => this.end(chunk),
        () => this.end(''),
      );
  }

  private end(last: string): void {
    if ((this.flags & CLOSED) !== 0) return;
    const chunk = this.pending + last;
    this.pending = '';
    this.flags |= CLOSED;
    this.unhold();
    this.subscription?.unsubscribe();
    this.subscription = undefined;
    this.sink.end(chunk);
    this.options.onClose(this);
  }

  private schedule(): void {
    if ((this.flags & SCHEDULED) !== 0) return;
    this.flags |= SCHEDULED;
    if (dirty.length === 0) queueMicrotask(flushDirty);
    dirty.push(this as TokenStream<unknown>);
  }

  /** @internal Writes what is pending (called once per tick by the shared flush). */
  flush(): void {
    this.flags &= ~SCHEDULED;
    if ((this.flags & CLOSED) !== 0 || this.pending === '') return;
    const chunk = this.pending;
    this.pending = '';
    this.sink.write(chunk);
    if (this.sink.buffered > this.options.maxBufferedBytes) this.pause();
    // Paused by a long replay, but the client took it: read on (no drain will come).
    else if ((this.flags & PAUSED) !== 0) this.resume();
  }

  private pause(): void {
    if ((this.flags & PAUSED) !== 0) return;
    this.flags |= PAUSED;
    // The drain listener is added by the first pause: most streams never need it.
    if ((this.flags & LISTENING) === 0) {
      this.flags |= LISTENING;
      this.sink.onDrain(() => this.resume());
    }
    // A paused reader keeps its job past retention (up to its grace) until it caught up.
    this.release ??= this.options.hold(this.jobId);
    this.subscription?.unsubscribe();
    this.subscription = undefined;
  }

  private resume(): void {
    if ((this.flags & (PAUSED | CLOSED)) !== PAUSED) return;
    this.flags &= ~PAUSED;
    // Released before the replay: a replay that pauses again takes a new hold (nothing can expire the
    // job in between, as this runs to the end synchronously).
    this.unhold();
    this.subscribe();
  }

  private unhold(): void {
    const release = this.release;
    this.release = undefined;
    release?.();
  }
}

/**
 * The stream's subscriber: a Subscription that is also an Observer, so the stream holds it before the
 * source starts and can stop a synchronous replay from inside it. It unsubscribes itself once the source
 * ends, so the source's teardown runs. Its one teardown is kept in a field (rxjs would allocate a list).
 */
class Reading<T> extends Subscription implements Observer<TokenEvent<T>> {
  private teardown: TeardownLogic = undefined;

  constructor(private readonly stream: TokenStream<T>) {
    super();
  }

  override add(teardown: TeardownLogic): void {
    if (this.teardown === undefined && !this.closed) this.teardown = teardown;
    else super.add(teardown);
  }

  override unsubscribe(): void {
    if (this.closed) return;
    super.unsubscribe();
    const t = this.teardown;
    this.teardown = undefined;
    if (typeof t === 'function') t();
    else if (t !== undefined && t !== null) t.unsubscribe();
  }

  next(ev: TokenEvent<T>): void {
    if (!this.closed) this.stream.onToken(ev);
  }
  error(e: unknown): void {
    if (this.closed) return;
    this.unsubscribe();
    this.stream.onError(e);
  }
  complete(): void {
    if (this.closed) return;
    this.unsubscribe();
    this.stream.onComplete();
  }
}
