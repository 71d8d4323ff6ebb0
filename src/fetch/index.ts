/**
 * job-registry/fetch: the Web-standard `(Request) => Promise<Response>` handler of the dual-call routes.
 *
 * @module job-registry/fetch
 */
export { createFetchHandler, createFetchResponsesHandler } from './handler.js';
export type { FetchHandler, FetchHandlerOptions } from './handler.js';
export type { CorsOptions, HandlerOptions } from '../protocol/options.js';
export type { Principal, JobAction, JobRef, Authenticate, Authorize } from '../protocol/access.js';
export { ownJobsOnly } from '../protocol/access.js';
export type { ResponsesOptions, ResponseCreate } from '../protocol/responses.js';
