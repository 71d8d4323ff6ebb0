export { redisBackend } from './backend.js';
export type { RedisBackendOptions, BackendLogger } from './options.js';
export { Keys, isValidPrefix } from './keys.js';
