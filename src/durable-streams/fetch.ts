/**
 * The Durable Streams protocol as a Web-standard handler `(Request) => Promise<Response>`, through the
 * shared `fetchHandler` adapter. Imports no `node:` module.
 */
import type { JobRegistry } from '../core/registry.js';
import { fetchHandler, type FetchHandler } from '../fetch/handler.js';
import type { DurableStreamsOptions } from './options.js';
import { createDurableStreamsProtocol } from './protocol.js';

/**
 * Creates the fetch handler of the Durable Streams routes under `basePath` (default `/v1/stream`). A
 * request outside it gets `404`, or goes to `notFound` when given.
 *
 * @example
 * const streams = createFetchDurableStreamsHandler(registry);
 * export const GET = streams, PUT = streams, POST = streams, HEAD = streams, DELETE = streams;
 * @throws InvalidArgumentError for a malformed option.
 */
export function createFetchDurableStreamsHandler<T, P>(
  registry: JobRegistry<T, P>,
  options: DurableStreamsOptions<Request> & {
    notFound?: (request: Request) => Response | Promise<Response>;
  } = {},
): FetchHandler {
  return fetchHandler(
    createDurableStreamsProtocol<Request>(registry as JobRegistry<unknown, unknown>, options),
    options.notFound,
  );
}
