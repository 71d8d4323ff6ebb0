/**
 * `job-registry/durable-streams`: the Durable Streams protocol over a registry, as a Node handler or a
 * fetch handler.
 */
export { createDurableStreamsHandler } from './node.js';
export { createFetchDurableStreamsHandler } from './fetch.js';
export type { DurableStreamsOptions } from './options.js';
export { formatOffset, parseOffset } from './wire.js';
