/**
 * `job-registry/durable-streams`: the Durable Streams protocol over a registry, as a Node handler, a
 * fetch handler, or the bare protocol for another adapter.
 */
export { createDurableStreamsProtocol } from './protocol.js';
export { createDurableStreamsHandler } from './node.js';
export { createFetchDurableStreamsHandler } from './fetch.js';
export type { DurableStreamsOptions } from './options.js';
export { formatOffset, parseOffset } from './wire.js';
