import type { Subscriber } from 'rxjs';
import { ReplayExpiredError } from './errors.js';
import { Serial } from './serial.js';
import type { TokenEvent } from './types.js';

/** One subscriber of a channel and the next seq it expects. */
export interface ChannelReader<T> {
  /** The subscriber tokens are delivered to. */
  readonly sub: Subscriber<TokenEvent<T>>;
  /** The seq this reader expects next. */
  next: number;
  /** Detaches the reader (it is its subscription's teardown). */
  unsubscribe(): void;
}

/** Told when a reader of a channel left (its subscription ended), instead of the channel just detaching it. */
export interface ReaderHost<T> {
  /** `reader` of `channel` left; the host detaches it (`channel.detach(reader)`). */
  readerLeft(channel: TokenChannel<T>, reader: ChannelReader<T>): void;
}

/** A reader; also its subscription's teardown, so a reader costs one object and no closure. */
class Reader<T> implements ChannelReader<T> {
  constructor(
    readonly sub: Subscriber<TokenEvent<T>>,
    public next: number,
    private readonly channel: TokenChannel<T>,
    private readonly host: ReaderHost<T> | undefined,
  ) {}

  unsubscribe(): void {
    if (this.host === undefined) this.channel.detach(this);
    else this.host.readerLeft(this.channel, this);
  }
}

const END = Symbol('end');
const NO_READERS: readonly never[] = Object.freeze([]);

/**
 * A job's tokens: a replay buffer (all tokens, or the last `limit` in a ring) in front of its live
 * readers. Every reader gets each seq once, in order, with no gap: replay first, then live tokens. A
 * reader that emits from its own callback does not reorder what the others see (`Serial`). Once
 * `close()` is called, current and later readers end with `endError()` (complete when it is undefined).
 */
export class TokenChannel<T> extends Serial<TokenEvent<T> | typeof END> {
  /** The seq the next token gets; also the number of tokens so far. */
  nextSeq = 0;
  /** The attached live readers, replaced (never mutated) when one comes or goes. */
  readers: readonly ChannelReader<T>[] = NO_READERS;
  /** Set by `close()`. */
  closed = false;
  // Raw tokens, not TokenEvents: with no reader here (a producer feeding a shared backend) a token costs
  // no allocation; events are built on delivery.
  private tokens: T[] | undefined = undefined;

  constructor(
    /** The job's id, named in the errors readers get. */
    readonly id: string,
    /** Tokens kept for replay: a whole number, or Infinity for all. */
    readonly limit: number,
  ) {
    super();
  }

  /** The oldest seq still kept (`nextSeq` when none is). */
  firstKept(): number {
    return this.limit === Infinity ? 0 : Math.max(0, this.nextSeq - this.limit);
  }

  /** Appends a token, delivers it to the readers, and returns its seq. */
  append(token: T): number {
    const seq = this.nextSeq;
    this.nextSeq = seq + 1;
    const limit = this.limit;
    if (limit === Infinity) {
      if (this.tokens === undefined) this.tokens = [token];
      else this.tokens.push(token);
    } else if (limit !== 0) {
      (this.tokens ??= [])[seq % limit] = token;
    }
    if (this.readers.length !== 0) this.dispatch({ seq, token });
    return seq;
  }

  /**
   * Replays the kept tokens with `seq > after` (all kept when absent) to `sub`, then attaches it for
   * live ones; a closed channel ends it instead. Returns the attached reader, or `undefined` when `sub`
   * was ended (or closed itself) during the replay. The reader's `unsubscribe()` detaches it, or tells
   * `host` when one is given.
   */
  read(
    sub: Subscriber<TokenEvent<T>>,
    after: number | undefined,
    host?: ReaderHost<T>,
  ): ChannelReader<T> | undefined {
    let next = this.firstKept();
    if (after !== undefined) {
      if (after + 1 < next) {
        sub.error(new ReplayExpiredError(this.id, after, next));
        return undefined;
      }
      next = after + 1;
    }
    const limit = this.limit;
    while (next < this.nextSeq) {
      if (sub.closed) return undefined;
      const first = this.firstKept();
      // Only reachable when this reader's own callback emits past a bounded buffer during replay.
      if (next < first) {
        sub.error(new ReplayExpiredError(this.id, next - 1, first));
        return undefined;
      }
      sub.next({ seq: next, token: this.tokens![limit === Infinity ? next : next % limit]! });
      next++;
    }
    if (sub.closed) return undefined;
    if (this.closed) {
      endOne(sub, this.endError());
      return undefined;
    }
    const reader = new Reader(sub, next, this, host);
    this.readers = this.readers.length === 0 ? [reader] : [...this.readers, reader];
    return reader;
  }

  /** Detaches a reader; returns whether none is left. */
  detach(reader: ChannelReader<T>): boolean {
    const rest = this.readers.filter((r) => r !== reader);
    this.readers = rest.length === 0 ? NO_READERS : rest;
    return rest.length === 0;
  }

  /** Ends every reader, now and later, with `endError()`, after the tokens already being delivered. */
  close(): void {
    this.closed = true;
    if (this.readers.length !== 0) this.dispatch(END);
  }

  /** How readers end once the channel is closed: `undefined` completes them. */
  protected endError(): Error | undefined {
    return undefined;
  }

  protected handle(item: TokenEvent<T> | typeof END): void {
    if (item === END) {
      const readers = this.readers;
      this.readers = NO_READERS;
      const error = this.endError();
      for (const r of readers) endOne(r.sub, error);
      return;
    }
    const readers = this.readers;
    const seq = item.seq;
    for (let i = 0; i < readers.length; i++) {
      const r = readers[i]!;
      if (seq >= r.next) {
        r.next = seq + 1;
        r.sub.next(item);
      }
    }
  }
}

function endOne<T>(sub: Subscriber<TokenEvent<T>>, error: Error | undefined): void {
  if (error === undefined) sub.complete();
  else sub.error(error);
}
