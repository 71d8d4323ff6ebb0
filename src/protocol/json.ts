/** JSON request bodies, for both handlers: the content type check, the limits' errors, the parse. */
import { HttpError } from './status.js';

/** Limits of a request body. */
export interface BodyLimits {
  maxBytes: number;
  timeoutMs: number;
}

/** Whether a Content-Type names JSON (`application/json`, `application/*+json`, any parameters). */
export function isJsonContentType(value: string | null | undefined): boolean {
  if (value === undefined || value === null) return false;
  const type = value.split(';', 1)[0]!.trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

export function notJson(): HttpError {
  return new HttpError(
    415,
    'UNSUPPORTED_MEDIA_TYPE',
    `job-registry: send the payload as JSON with Content-Type: application/json`,
  );
}

export function tooLarge(maxBytes: number): HttpError {
  return new HttpError(
    413,
    'PAYLOAD_TOO_LARGE',
    `job-registry: the body is over the limit of ${maxBytes} bytes (maxBodyBytes)`,
  );
}

export function tooSlow(timeoutMs: number): HttpError {
  return new HttpError(
    408,
    'REQUEST_TIMEOUT',
    `job-registry: the body did not arrive within ${timeoutMs} ms`,
  );
}

export function unreadable(): HttpError {
  return new HttpError(400, 'INVALID_JSON', 'job-registry: the request body could not be read');
}

/** Parses a body's text. @throws HttpError 400 INVALID_JSON for an empty or malformed body. */
export function parseJsonText(text: string): unknown {
  if (text.trim() === '')
    throw new HttpError(400, 'INVALID_JSON', 'job-registry: the body is empty; send a JSON payload');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(
      400,
      'INVALID_JSON',
      `job-registry: the body is not valid JSON (${(e as Error).message})`,
    );
  }
}
