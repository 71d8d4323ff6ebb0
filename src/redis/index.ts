export { redisBackend } from './backend.js';
export type { RedisBackendOptions, BackendLogger } from './backend.js';
export { keysFor, isValidPrefix } from './keys.js';
export type { Keys } from './keys.js';
