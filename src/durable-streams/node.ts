/**
 * The Durable Streams protocol as a Node handler (`http.createServer`, Express, Connect), through the
 * shared `nodeHandler` adapter.
 */
import type { IncomingMessage } from 'node:http';
import type { JobRegistry } from '../core/registry.js';
import { nodeHandler, type JobHandler } from '../http/handler.js';
import type { DurableStreamsOptions } from './options.js';
import { createDurableStreamsProtocol } from './protocol.js';

/**
 * Creates the Node handler of the Durable Streams routes under `basePath` (default `/v1/stream`). A
 * request outside it goes to `next()` when one is given, else gets `404`.
 *
 * @example
 * const streams = createDurableStreamsHandler(registry);
 * const jobs = createJobHandler(registry, { execute });
 * http.createServer((req, res) => streams(req, res, () => jobs(req, res))).listen(8080);
 * @throws InvalidArgumentError for a malformed option.
 */
export function createDurableStreamsHandler<T, P>(
  registry: JobRegistry<T, P>,
  options: DurableStreamsOptions<IncomingMessage> = {},
): JobHandler {
  return nodeHandler(
    createDurableStreamsProtocol<IncomingMessage>(registry as JobRegistry<unknown, unknown>, options),
  );
}
