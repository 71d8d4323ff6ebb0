/**
 * job-registry/ai-sdk: the routes the AI SDK's `useChat` and `DefaultChatTransport` expect (a chat's answer
 * streamed as a UI message stream, resumed after a reload, stopped from anywhere), each answer a job keyed
 * by its chat id, under the same policy as every surface; and `streamChat`, which runs `streamText` (or
 * any source of UI message chunks) as a job's executor. Loads no module of `ai`: the client transport is
 * `job-registry/ai-sdk/client`.
 *
 * @module job-registry/ai-sdk
 */
export { createChatHandler } from './node.js';
export { createFetchChatHandler } from './fetch.js';
export { streamChat } from './source.js';
export type { ChatSource, StreamChatOptions, UIMessageStreamSource } from './source.js';
export type { ChatContext, ChatExecutor, ChatOptions, ChatRequest } from './options.js';
export { chatKey } from './wire.js';
export type { JobHandler } from '../http/handler.js';
export type { FetchHandler } from '../fetch/handler.js';
export type {
  Principal,
  JobAction,
  JobRef,
  Authenticate,
  Authorize,
  AccessOptions,
} from '../protocol/access.js';
export type { CorsOptions } from '../protocol/options.js';
