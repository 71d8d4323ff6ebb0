/**
 * Reads a request body as bytes from either runtime's request, without importing `node:`: a fetch
 * `Request` (`arrayBuffer`) or a Node `IncomingMessage` (an async iterable of chunks).
 */
import { HttpError } from '../http/status.js';

/** Reads the whole body, refusing more than `maxBytes` (`413`). */
export async function readBytes(raw: unknown, maxBytes: number): Promise<Uint8Array> {
  const tooLarge = (): HttpError =>
    new HttpError(413, 'PAYLOAD_TOO_LARGE', `job-registry: the body is larger than ${maxBytes} bytes`, {
      Connection: 'close',
    });
  const r = raw as {
    arrayBuffer?: () => Promise<ArrayBuffer>;
    headers?: { get?: (n: string) => string | null };
  };
  if (typeof r.arrayBuffer === 'function') {
    const declared = r.headers?.get?.('content-length');
    if (declared != null && Number(declared) > maxBytes) throw tooLarge();
    const buf = new Uint8Array(await r.arrayBuffer());
    if (buf.byteLength > maxBytes) throw tooLarge();
    return buf;
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of raw as AsyncIterable<Uint8Array | string>) {
    const bytes = typeof chunk === 'string' ? new TextEncoder().encode(chunk) : chunk;
    size += bytes.byteLength;
    if (size > maxBytes) throw tooLarge();
    chunks.push(bytes);
  }
  if (chunks.length === 1) return chunks[0]!;
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return all;
}
