import type { IncomingMessage } from 'node:http';
import { HttpError } from './status.js';

/** Limits for {@link readJsonBody}. */
export interface BodyLimits {
  maxBytes: number;
  timeoutMs: number;
}

/** Whether a Content-Type names JSON (`application/json`, `application/*+json`, any parameters). */
export function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const type = value.split(';', 1)[0]!.trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

/**
 * Reads and parses a JSON request body. Refuses a declared length over the limit before reading, stops
 * reading as soon as the limit is passed, and gives up on a body that has not arrived within the timeout.
 *
 * @throws HttpError 415, 413, 408 or 400.
 */
export function readJsonBody(req: IncomingMessage, limits: BodyLimits): Promise<unknown> {
  if (!isJsonContentType(req.headers['content-type']))
    return Promise.reject(
      new HttpError(
        415,
        'UNSUPPORTED_MEDIA_TYPE',
        `job-registry: send the payload as JSON with Content-Type: application/json`,
      ),
    );
  // A framework body parser (e.g. express.json()) may have read the body already: use what it parsed.
  const parsed = (req as IncomingMessage & { body?: unknown }).body;
  if (parsed !== undefined && req.readableEnded) return Promise.resolve(parsed);
  const tooLarge = () =>
    new HttpError(
      413,
      'PAYLOAD_TOO_LARGE',
      `job-registry: the body is over the limit of ${limits.maxBytes} bytes (maxBodyBytes)`,
    );
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limits.maxBytes) return Promise.reject(tooLarge());
  return new Promise<unknown>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (error: HttpError | undefined, value?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      if (error !== undefined) {
        // Stop the transfer: what is left of the body is never buffered.
        req.pause();
        reject(error);
      } else resolve(value);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limits.maxBytes) return finish(tooLarge());
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '')
        return finish(
          new HttpError(400, 'INVALID_JSON', 'job-registry: the body is empty; send a JSON payload'),
        );
      try {
        finish(undefined, JSON.parse(text));
      } catch (e) {
        finish(
          new HttpError(
            400,
            'INVALID_JSON',
            `job-registry: the body is not valid JSON (${(e as Error).message})`,
          ),
        );
      }
    };
    const onError = (): void =>
      finish(new HttpError(400, 'INVALID_JSON', 'job-registry: the request body could not be read'));
    const onAborted = onError;
    const timer = setTimeout(
      () =>
        finish(
          new HttpError(
            408,
            'REQUEST_TIMEOUT',
            `job-registry: the body did not arrive within ${limits.timeoutMs} ms`,
          ),
        ),
      limits.timeoutMs,
    );
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}
