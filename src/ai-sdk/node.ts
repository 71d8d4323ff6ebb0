/** The AI SDK chat routes as a Node handler (`http.createServer`, Express, Connect), through `nodeHandler`. */
import type { IncomingMessage } from 'node:http';
import type { JobRegistry } from '../core/registry.js';
import { nodeHandler, type JobHandler } from '../http/handler.js';
import type { ChatOptions, ChatRequest } from './options.js';
import { createChatProtocol } from './protocol.js';

/**
 * Creates the Node handler of the AI SDK chat routes under `basePath` (default `/api/chat`): `POST` starts
 * a chat's answer and streams it, `GET {basePath}/{chatId}/stream` resumes it, `DELETE` of the same path
 * stops it. A chat job's tokens are the answer's UI message chunks, whatever the registry's token type. A
 * request outside the routes goes to `next()` when one is given, else gets `404`.
 *
 * @example
 * const chat = createChatHandler(registry, {
 *   execute: async ({ messages }, { signal }) =>
 *     streamText({ model, messages: await convertToModelMessages(messages), abortSignal: signal }),
 * });
 * http.createServer((req, res) => chat(req, res, () => jobs(req, res))).listen(8080);
 * @throws InvalidArgumentError for a malformed option.
 */
export function createChatHandler<T, R, P = ChatRequest>(
  registry: JobRegistry<T, R>,
  options: ChatOptions<P, IncomingMessage>,
): JobHandler {
  return nodeHandler(
    createChatProtocol<P, IncomingMessage>(registry as JobRegistry<unknown, unknown>, options),
  );
}
