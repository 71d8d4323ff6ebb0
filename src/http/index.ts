/**
 * job-registry/http: the Node `http` handlers: the dual-call routes (`createJobHandler`, usable with
 * `http.createServer`, Express and Connect) and OpenAI-compatible background responses
 * (`createResponsesHandler`), with the auth, stream-token and wire types their options and answers use.
 *
 * @module job-registry/http
 */
export { createJobHandler, createResponsesHandler } from './handler.js';
export type { JobHandler, JobHandlerOptions, CorsOptions } from './handler.js';
export type { ResponsesOptions, ResponseCreate } from '../protocol/responses.js';
export { ownJobsOnly } from '../protocol/access.js';
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
export { requestPath } from '../protocol/route.js';
export type { WireSnapshot, WireEvent, WireProgress } from '../protocol/wire.js';
