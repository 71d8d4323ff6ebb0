/**
 * The AI SDK chat routes as a Web-standard handler `(Request) => Promise<Response>` (Next.js route
 * handlers, hono, Bun, Deno, Workers), through `fetchHandler`. Imports no `node:` module.
 */
import type { JobRegistry } from '../core/registry.js';
import { fetchHandler, type FetchHandler } from '../fetch/handler.js';
import type { ChatOptions, ChatRequest } from './options.js';
import { createChatProtocol } from './protocol.js';

/**
 * Creates the fetch handler of the AI SDK chat routes under `basePath` (default `/api/chat`); see
 * `createChatHandler`. A request outside them gets `404`, or goes to `notFound` when given.
 *
 * @example
 * // app/api/chat/[[...path]]/route.ts (Next.js)
 * const chat = createFetchChatHandler(registry, { execute });
 * export const POST = chat, GET = chat, DELETE = chat;
 * @throws InvalidArgumentError for a malformed option.
 */
export function createFetchChatHandler<T, R, P = ChatRequest>(
  registry: JobRegistry<T, R>,
  options: ChatOptions<P, Request> & { notFound?: (request: Request) => Response | Promise<Response> },
): FetchHandler {
  return fetchHandler(
    createChatProtocol<P, Request>(registry as JobRegistry<unknown, unknown>, options),
    options.notFound,
  );
}
