/**
 * Where an SSE response's bytes go, in either handler: a Node `ServerResponse`, or a pull-based
 * `ReadableStream` of a fetch `Response`. `buffered` is what the client has not taken yet: past the
 * stream's limit it pauses reading its job, and goes on at `onDrain`.
 */
export interface SseSink {
  /** Writes a chunk of the event stream. */
  write(chunk: string): void;
  /** Writes the last chunk and ends the response. */
  end(chunk?: string): void;
  /** Bytes (or characters) written that the client has not taken yet. */
  readonly buffered: number;
  /** Called when the client took what was buffered. */
  onDrain(listener: () => void): void;
  /**
   * `target.close()` is called once when the response ends or the client goes away (at once when that
   * already happened). One target per sink: an object, not a closure, so a stream costs none.
   */
  onClose(target: SinkOwner): void;
}

/** What owns a sink: closed when its response ends. */
export interface SinkOwner {
  close(): void;
}
