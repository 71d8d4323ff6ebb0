export { createJobHandler } from './handler.js';
export type { JobHandler, JobHandlerOptions, CorsOptions } from './handler.js';
export { dataLines, sseEvent, tokenEvent, retryField, comment } from './sse.js';
export { HttpError, STATUS_BY_CODE, toHttpError } from './status.js';
export type { HttpErrorCode } from './status.js';
export { readJsonBody, isJsonContentType } from './body.js';
export { toWireSnapshot, toWireEvent } from './wire.js';
export type { WireSnapshot, WireEvent } from './wire.js';
