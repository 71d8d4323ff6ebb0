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
export { createProtocol, sseEncoder } from '../protocol/protocol.js';
export type { HttpRequest, Reply, Answer, Protocol } from '../protocol/protocol.js';
export type { SseSink } from '../protocol/sink.js';
export type { StreamEncoder } from '../protocol/stream.js';
export { createResponsesProtocol } from '../protocol/responses.js';
export type { ResponsesOptions, ResponseCreate } from '../protocol/responses.js';
export { eventsAfterSnapshot } from '../protocol/events.js';
export { Access, ownJobsOnly } from '../protocol/access.js';
export type {
  Principal,
  JobAction,
  JobRef,
  Authenticate,
  Authorize,
  AccessOptions,
} from '../protocol/access.js';
export { streamTokenSigner } from '../protocol/stream-token.js';
export type { StreamTokenOptions, StreamTokenSigner } from '../protocol/stream-token.js';
export { requestPath, requestQuery } from '../protocol/route.js';
export { dataLines, sseEvent, tokenEvent, retryField, comment } from '../protocol/sse.js';
export { HttpError, STATUS_BY_CODE, toHttpError } from '../protocol/status.js';
export type { HttpErrorCode } from '../protocol/status.js';
export { readJsonBody, isJsonContentType } from './body.js';
export {
  toWireSnapshot,
  toWireEvent,
  toWireProgress,
  visibleError,
  REDACTED_ERROR,
} from '../protocol/wire.js';
export type { WireSnapshot, WireEvent, WireProgress } from '../protocol/wire.js';
