/**
 * The Durable Streams wire: header names, offsets, cursors and how a stream's chunks become bytes. Pure
 * functions; imports no `node:` module.
 */

export const H = {
  nextOffset: 'Stream-Next-Offset',
  cursor: 'Stream-Cursor',
  upToDate: 'Stream-Up-To-Date',
  closed: 'Stream-Closed',
  seq: 'Stream-Seq',
  ttl: 'Stream-TTL',
  expiresAt: 'Stream-Expires-At',
  producerId: 'Producer-Id',
  producerEpoch: 'Producer-Epoch',
  producerSeq: 'Producer-Seq',
  expectedSeq: 'Producer-Expected-Seq',
  receivedSeq: 'Producer-Received-Seq',
  sseEncoding: 'Stream-SSE-Data-Encoding',
  forkedFrom: 'Stream-Forked-From',
  forkOffset: 'Stream-Fork-Offset',
  forkSubOffset: 'Stream-Fork-Sub-Offset',
} as const;

/** Headers on every answer. CORS headers come only from the handler's `cors` option. */
export const COMMON_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'X-Content-Type-Options': 'nosniff',
});

/** Request headers of the protocol a browser may send, with the `cors` option set (Protocol 10.7). */
export const ALLOW_HEADERS =
  'If-None-Match, Stream-Seq, Stream-TTL, Stream-Expires-At, Stream-Closed, Producer-Id, Producer-Epoch, Producer-Seq, Stream-Forked-From, Stream-Fork-Offset, Stream-Fork-Sub-Offset';

/** Response headers of the protocol a browser script may read, with the `cors` option set. */
export const EXPOSE_HEADERS =
  'Stream-Next-Offset, Stream-Cursor, Stream-Up-To-Date, Stream-Closed, Stream-TTL, Stream-Expires-At, Stream-SSE-Data-Encoding, Producer-Epoch, Producer-Seq, Producer-Expected-Seq, Producer-Received-Seq, ETag, Content-Type, Content-Encoding, Vary';

const PAD = '0000000000000000';
const OFFSET = /^(\d{1,16})_(\d{1,16})$/;

/**
 * The offset after `count` chunks (seq `count - 1` is the last one read). Opaque to clients; ordered as
 * strings because both parts are zero-padded to 16 digits.
 */
export function formatOffset(count: number): string {
  const s = String(count);
  return `${PAD}_${PAD.slice(s.length)}${s}`;
}

/** The chunk count an offset stands for; `undefined` for a string this server did not hand out. */
export function parseOffset(offset: string): number | undefined {
  const m = OFFSET.exec(offset);
  if (m === null || Number(m[1]) !== 0) return undefined;
  const n = Number(m[2]);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The media type of a content type, lowercased, without parameters (`''` for none). */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Whether a stream of this content type is in JSON mode: each chunk is a JSON value, reads are arrays. */
export function isJsonType(contentType: string | undefined): boolean {
  return mediaType(contentType) === 'application/json';
}

/** Whether SSE can carry a stream of this type as text (else base64, Protocol 5.7). */
export function isTextType(contentType: string | undefined): boolean {
  const t = mediaType(contentType);
  return t.startsWith('text/') || t === 'application/json';
}

const CURSOR_EPOCH_MS = Date.UTC(2024, 9, 9);

/**
 * The cursor of a live answer (Protocol 8.1): the current 20-second interval since the protocol's epoch,
 * moved on by a random jitter when the client already sent that interval, so CDN caches collapse readers
 * without looping one on the same cached answer.
 */
export function responseCursor(client: string | null, intervalSeconds: number): string {
  const now = Math.floor((Date.now() - CURSOR_EPOCH_MS) / (intervalSeconds * 1000));
  const sent = client === null ? NaN : parseInt(client, 10);
  if (!(sent >= now)) return String(now);
  const jitter = 1 + Math.floor(Math.random() * 3600);
  return String(sent + Math.max(1, Math.ceil(jitter / intervalSeconds)));
}

/** Bytes as a binary string (one char per byte): the token form of a byte chunk, kept by every backend. */
export function bytesToToken(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192)
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[]);
  return s;
}

/** The bytes of byte-chunk tokens, concatenated. */
export function tokensToBytes(tokens: readonly unknown[]): Uint8Array {
  let size = 0;
  for (const t of tokens) size += (t as string).length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const t of tokens) {
    const s = t as string;
    for (let i = 0; i < s.length; i++) out[at++] = s.charCodeAt(i) & 0xff;
  }
  return out;
}

/** A JSON-mode read: the chunks as one array. */
export function tokensToJson(tokens: readonly unknown[]): string {
  let s = '[';
  for (let i = 0; i < tokens.length; i++) s += (i === 0 ? '' : ',') + (JSON.stringify(tokens[i]) ?? 'null');
  return s + ']';
}

/** Base64 of bytes, without `Buffer` (runs in every runtime). */
export function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192)
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[]);
  return btoa(s);
}

/** One SSE event: each CR, LF or CRLF of the data starts a new `data:` line, so no data forges a field. */
export function sseFrame(event: string, data: string): string {
  return `event: ${event}\ndata:${data.split(/\r\n|\r|\n/).join('\ndata:')}\n\n`;
}

/** A strong ETag for a read of a stream from one offset to another (`:c` once closed at the tail). */
export function etag(name: string, from: string, to: string, closed: boolean): string {
  return `"${encodeURIComponent(name)}:${from}:${to}${closed ? ':c' : ''}"`;
}
