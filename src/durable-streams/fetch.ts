/**
 * The Durable Streams protocol as a Web-standard handler `(Request) => Promise<Response>`, through the
 * shared `fetchHandler` adapter. Imports no `node:` module.
 */
import type { JobRegistry } from '../core/registry.js';
import { fetchHandler, type FetchHandler } from '../fetch/handler.js';
import type { Protocol, Reply } from '../http/protocol.js';
import type { DurableStreamsOptions } from './options.js';
import { bodyOf, createDurableStreamsProtocol } from './protocol.js';

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
  options: DurableStreamsOptions & { notFound?: (request: Request) => Response | Promise<Response> } = {},
): FetchHandler {
  const inner = createDurableStreamsProtocol<Request>(registry as JobRegistry<unknown, unknown>, options);
  // A read's body is bytes, which the shared fetch adapter cannot carry yet: the reply is kept here and
  // answered as a plain Response in its place.
  const bodies = new WeakMap<Request, { reply: Reply; body: Uint8Array | string }>();
  const protocol: Protocol<Request> = {
    handle: async (req) => {
      const reply = await inner.handle(req);
      const body = bodyOf(reply);
      if (body === undefined) return reply;
      bodies.set(req.raw, { reply, body });
      return { kind: 'empty', status: 200, headers: {} };
    },
    errorReply: (e, req) => inner.errorReply(e, req),
    close: () => inner.close(),
    drain: () => inner.drain(),
    get draining() {
      return inner.draining;
    },
    get connections() {
      return inner.connections;
    },
  };
  const served = fetchHandler(protocol, options.notFound);
  const handler = (async (request: Request): Promise<Response> => {
    const response = await served(request);
    const kept = bodies.get(request);
    if (kept === undefined) return response;
    bodies.delete(request);
    const headers = (kept.reply as { headers: Record<string, string> }).headers;
    return new Response(request.method === 'HEAD' ? null : (kept.body as BodyInit), { status: 200, headers });
  }) as FetchHandler;
  handler.close = served.close;
  handler.drain = served.drain;
  Object.defineProperty(handler, 'connections', { get: () => served.connections });
  Object.defineProperty(handler, 'draining', { get: () => served.draining });
  return handler;
}
