/**
 * One live SSE read of a stream (Protocol 5.7): a `data` event per chunk, each followed by a `control`
 * event with the offset after it, a keep-alive `control` while idle, and a last `control` with
 * `streamClosed` when the job ends. Imports no `node:` module.
 */
import type { Observable, Subscription } from 'rxjs';
import type { TokenEvent } from '../core/types.js';
import type { SseSink } from '../protocol/sink.js';
import { isJobEnd } from './reader.js';
import { formatOffset, sseFrame, tokensToBytes } from './wire.js';

/** How chunks become `data`: JSON values (each as a one-element array), UTF-8 text, or base64 bytes. */
export type SseMode = 'json' | 'text' | 'base64';

export interface SseReaderOptions {
  /** The stream's chunks from `from` on, ending with its job. */
  tokens$: Observable<TokenEvent<unknown>>;
  mode: SseMode;
  /** The chunk count to start after (the request's offset). */
  from: number;
  /** The job's chunk count when the request came: up to it, the reader is catching up. */
  known: number;
  cursor(): string;
  keepAliveMs: number;
  /** Called on each chunk sent (a stream's TTL slides while it is read). */
  touch(): void;
  onClose(reader: SseReader): void;
}

const decoder = new TextDecoder();

export class SseReader {
  private next: number;
  private sub: Subscription | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private ended = false;
  private sentSince = false;
  /** Frames of the current burst, written together at its end. */
  private pending = '';
  private flushing = false;

  constructor(
    private readonly sink: SseSink,
    private readonly o: SseReaderOptions,
  ) {
    this.next = o.from;
  }

  start(): void {
    this.sink.onClose(this);
    this.sub = this.o.tokens$.subscribe({
      next: (ev) => this.chunk(ev.seq, ev.token),
      // A failed or cancelled job is a closed stream; a job removed under the reader ends it without that.
      error: (e: unknown) => (isJobEnd(e) ? this.finish() : this.close()),
      complete: () => this.finish(),
    });
    if (this.ended) return this.sub.unsubscribe();
    // Nothing to catch up on: say so at once, so the client knows it is live.
    if (this.next >= this.o.known && !this.sentSince) this.control(true);
    this.timer = setInterval(() => {
      if (!this.sentSince) this.control(true);
      this.sentSince = false;
    }, this.o.keepAliveMs);
  }

  private chunk(seq: number, token: unknown): void {
    if (this.ended) return;
    let data: string;
    if (this.o.mode === 'json') data = `[${JSON.stringify(token) ?? 'null'}]`;
    else if (this.o.mode === 'base64') data = btoa(token as string);
    else data = decoder.decode(tokensToBytes([token]));
    this.next = seq + 1;
    // A chunk's data and its control event, and every chunk of one burst (a catch-up, a batch of
    // appends), go out as one write.
    this.pending += sseFrame('data', data) + this.controlFrame(this.next >= this.o.known);
    this.sentSince = true;
    if (!this.flushing) {
      this.flushing = true;
      queueMicrotask(this.flush);
    }
    this.o.touch();
  }

  private readonly flush = (): void => {
    this.flushing = false;
    const out = this.pending;
    this.pending = '';
    if (out !== '' && !this.ended) this.sink.write(out);
  };

  private controlFrame(upToDate: boolean): string {
    const c: Record<string, string | boolean> = {
      streamNextOffset: formatOffset(this.next),
      streamCursor: this.o.cursor(),
    };
    if (upToDate) c.upToDate = true;
    return sseFrame('control', JSON.stringify(c));
  }

  private control(upToDate: boolean): void {
    this.flush();
    this.sink.write(this.controlFrame(upToDate));
    this.sentSince = true;
  }

  private finish(): void {
    if (this.ended) return;
    // `upToDate` is implied by `streamClosed` (Protocol 5.7), but the TypeScript client only hands a
    // subscriber a control event without data when it says `upToDate`.
    const end = { streamNextOffset: formatOffset(this.next), upToDate: true, streamClosed: true };
    const rest = this.pending;
    this.pending = '';
    this.sink.end(rest + sseFrame('control', JSON.stringify(end)));
    this.close();
  }

  /** Ends the read (the client went, or the handler closes); idempotent. */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.timer);
    this.sub?.unsubscribe();
    // What the reader got so far still goes out: the client resumes after it.
    const rest = this.pending;
    this.pending = '';
    this.sink.end(rest === '' ? undefined : rest);
    this.o.onClose(this);
  }
}
