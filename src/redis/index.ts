/**
 * job-registry/redis: the Redis Streams backend (`redisBackend`), through which several processes share one
 * registry. Needs the `ioredis` peer dependency.
 *
 * @module job-registry/redis
 */
export { redisBackend } from './backend.js';
export type { RedisBackendOptions, BackendLogger } from './options.js';
export { Keys, isValidPrefix } from './keys.js';
