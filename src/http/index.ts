/**
 * job-registry/http: the Node `http` handler of the dual-call routes (`createJobHandler`, usable with
 * `http.createServer`, Express and Connect), the Responses preset, and the protocol, SSE framing and wire forms
 * both handlers share.
 *
 * @module job-registry/http
 */
export { createJobHandler } from './handler.js';
export { createResponsesHandler, nodeHandler } from './handler.js';
export type { JobHandler, JobHandlerOptions, CorsOptions } from './handler.js';
export { createProtocol, sseEncoder } from './protocol.js';
export type { HttpRequest, Reply, Answer, Protocol } from './protocol.js';
export type { SseSink } from './sink.js';
export type { StreamEncoder } from './stream.js';
export { createResponsesProtocol } from './responses.js';
export type { ResponsesOptions, ResponseCreate } from './responses.js';
export { eventsAfterSnapshot } from './events.js';
export { Access, ownJobsOnly } from './access.js';
export type { Principal, JobAction, JobRef, Authenticate, Authorize, AccessOptions } from './access.js';
export { streamTokenSigner } from './stream-token.js';
export type { StreamTokenOptions, StreamTokenSigner } from './stream-token.js';
export { requestPath, requestQuery } from './route.js';
export { dataLines, sseEvent, tokenEvent, retryField, comment } from './sse.js';
export { HttpError, STATUS_BY_CODE, toHttpError } from './status.js';
export type { HttpErrorCode } from './status.js';
export { readJsonBody, isJsonContentType } from './body.js';
export { toWireSnapshot, toWireEvent, toWireProgress, visibleError, REDACTED_ERROR } from './wire.js';
export type { WireSnapshot, WireEvent, WireProgress } from './wire.js';
