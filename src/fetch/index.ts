/**
 * job-registry/fetch: the Web-standard `(Request) => Promise<Response>` handler of the dual-call routes.
 *
 * @module job-registry/fetch
 */
export { createFetchHandler, createFetchResponsesHandler, fetchHandler } from './handler.js';
export type { FetchHandler, FetchHandlerOptions } from './handler.js';
export type { CorsOptions, HandlerOptions } from '../http/options.js';
export type { Principal, JobAction, JobRef, Authenticate, Authorize } from '../http/access.js';
export { ownJobsOnly } from '../http/access.js';
export type { ResponsesOptions, ResponseCreate } from '../http/responses.js';
