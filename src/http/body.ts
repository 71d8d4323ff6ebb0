import type { IncomingMessage } from 'node:http';
import {
  isJsonContentType,
  notJson,
  parseJsonText,
  tooLarge,
  tooSlow,
  unreadable,
  type BodyLimits,
} from '../protocol/json.js';
import { HttpError } from '../protocol/status.js';

export { isJsonContentType, type BodyLimits } from '../protocol/json.js';

/**
 * Reads and parses a JSON request body from a Node request. Refuses a declared length over the limit
 * before reading, stops reading as soon as the limit is passed, and gives up on a body that has not
 * arrived within the timeout. A body a framework already parsed (Express `express.json()`, or Fastify's
 * `request.body` set on the raw request) is used as it is.
 *
 * @throws HttpError 415, 413, 408 or 400.
 */
export function readJsonBody(req: IncomingMessage, limits: BodyLimits): Promise<unknown> {
  if (!isJsonContentType(req.headers['content-type'])) return Promise.reject(notJson());
  const parsed = (req as IncomingMessage & { body?: unknown }).body;
  if (parsed !== undefined && (req.readableEnded || req.complete)) return Promise.resolve(parsed);
  // A framework read the body and kept it elsewhere: waiting for it would only end in a 408.
  if (req.readableEnded)
    return Promise.reject(
      new HttpError(
        500,
        'INTERNAL',
        'job-registry: the request body was already read by a framework; set req.body to the parsed JSON ' +
          '(Fastify: request.raw.body = request.body) before calling the handler',
      ),
    );
  return readBodyBytes(req, limits).then((bytes) => parseJsonText(bytes.toString('utf8')));
}

/**
 * Reads a Node request's body as bytes within the limits: a declared length over the limit is refused
 * before reading, reading stops as soon as the limit is passed, and a body that has not arrived within
 * the timeout is given up on.
 *
 * @throws HttpError 413, 408 or 400.
 */
export function readBodyBytes(req: IncomingMessage, limits: BodyLimits): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limits.maxBytes)
    return Promise.reject(tooLarge(limits.maxBytes));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (error: HttpError | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onError);
      if (error !== undefined) {
        // Stop the transfer: what is left of the body is never buffered.
        req.pause();
        reject(error);
      } else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    };
    const onData = (chunk: Buffer | string): void => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += bytes.length;
      if (size > limits.maxBytes) return finish(tooLarge(limits.maxBytes));
      chunks.push(bytes);
    };
    const onEnd = (): void => finish(undefined);
    const onError = (): void => finish(unreadable());
    const timer = setTimeout(() => finish(tooSlow(limits.timeoutMs)), limits.timeoutMs);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onError);
  });
}

/** The most of a refused body read and thrown away so that its client sees the answer. */
const DISCARD_MAX_BYTES = 64 * 1024 * 1024;
/** How long a refused body may take to arrive while it is thrown away. */
const DISCARD_MS = 10_000;

/**
 * Reads and throws away what is left of a refused body (a 413), so that its client, still sending,
 * reads the answer instead of a reset: closing a socket with unread bytes resets it, and the reset
 * can overtake the answer. Gives up (destroys the socket) past 64 MiB or 10 s.
 *
 * @returns false when the rest is too large to wait for: the connection has to close instead.
 */
export function discardRest(req: IncomingMessage): boolean {
  if (req.complete) return true;
  const declared = req.headers['content-length'];
  if (declared !== undefined && !(Number(declared) <= DISCARD_MAX_BYTES)) return false;
  let left = DISCARD_MAX_BYTES;
  const socket = req.socket;
  const stop = (): void => {
    clearTimeout(timer);
    req.off('data', onData);
    req.off('end', stop);
    req.off('close', stop);
    socket.off('close', stop);
  };
  const giveUp = (): void => {
    stop();
    socket.destroy();
  };
  const onData = (chunk: Buffer | string): void => {
    left -= chunk.length;
    if (left < 0) giveUp();
  };
  const timer = setTimeout(giveUp, DISCARD_MS);
  req.on('data', onData);
  req.on('end', stop);
  req.on('close', stop);
  // Once answered, the request is no longer one its server aborts when the client goes: the socket says so.
  socket.on('close', stop);
  req.resume();
  return true;
}
