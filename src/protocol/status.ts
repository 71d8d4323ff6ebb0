import { JobRegistryError } from '../core/errors.js';

/** Error codes of the HTTP layer itself, beside the registry's. */
export type HttpErrorCode =
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'INVALID_JSON'
  | 'INVALID_PAYLOAD'
  | 'INVALID_JOB_ID'
  | 'INVALID_CHAT_ID'
  | 'INVALID_RESUME_POINT'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'REQUEST_TIMEOUT'
  | 'JOB_TERMINAL'
  | 'INVALID_PATH'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'CAPACITY'
  | 'DRAINING'
  | 'INTERNAL';

/** An error answered over HTTP with a status and a JSON body `{"error":{"code","message"}}`. */
export class HttpError extends Error {
  constructor(
    /** The HTTP status to answer. */
    readonly status: number,
    /** The stable error code sent in the body, e.g. `JOB_NOT_FOUND`. */
    readonly code: string,
    message: string,
    /** Headers to add to the answer, e.g. `Retry-After`. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** The one table from error code to HTTP status. */
export const STATUS_BY_CODE: Readonly<Record<string, number>> = Object.freeze({
  JOB_NOT_FOUND: 404,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  INVALID_JSON: 400,
  INVALID_PAYLOAD: 400,
  INVALID_JOB_ID: 400,
  INVALID_CHAT_ID: 400,
  INVALID_RESUME_POINT: 400,
  INVALID_ARGUMENT: 400,
  INVALID_STATE: 400,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  REQUEST_TIMEOUT: 408,
  JOB_TERMINAL: 409,
  INVALID_TRANSITION: 409,
  JOB_CLOSED: 409,
  JOB_BUSY: 409,
  REPLAY_EXPIRED: 410,
  INVALID_PATH: 400,
  RESUME_AHEAD: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  CAPACITY: 429,
  LIMIT_EXCEEDED: 409,
  REGISTRY_DISPOSED: 503,
  DRAINING: 503,
  BACKEND_ERROR: 503,
});

/** Status, code and message for anything thrown while answering a request. */
export function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof JobRegistryError) return new HttpError(STATUS_BY_CODE[e.code] ?? 500, e.code, e.message);
  return new HttpError(500, 'INTERNAL', 'job-registry: internal error');
}

/** An error that is neither an HttpError nor a registry error: a bug or a broken dependency (500). */
export function isUnexpected(e: unknown): boolean {
  return !(e instanceof HttpError) && !(e instanceof JobRegistryError);
}
