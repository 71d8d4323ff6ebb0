/**
 * job-registry: the registry of streaming jobs (`JobRegistry`), their states and events, the error classes, and
 * the backend interface.
 *
 * @module job-registry
 */
export { JobRegistry } from './registry.js';
export type {
  JobRegistryOptions,
  CreateJobInit,
  ExecutionContext,
  Executor,
  PayloadExecutor,
  TokensOptions,
  RegistryStats,
} from './registry.js';
export type { JobState, JobStatus, TokenEvent, JobSnapshot, RegistryEvent, JobProgress } from './types.js';
export {
  JobRegistryError,
  JobNotFoundError,
  InvalidTransitionError,
  InvalidStateError,
  InvalidArgumentError,
  JobClosedError,
  JobFailedError,
  JobCancelledError,
  JobBusyError,
  ReplayExpiredError,
  RegistryDisposedError,
  BackendError,
  CapacityError,
  LimitExceededError,
  ResumeAheadError,
  PublicError,
  isPublicError,
  messageOf,
} from './errors.js';
export type { JobRegistryErrorCode } from './errors.js';
export { JOB_STATES, isJobState, isTerminal, canTransition } from './states.js';
export { isValidJobId, MAX_JOB_ID_LENGTH } from './ids.js';
export { toMillis } from './duration.js';
export type { DurationInput } from './duration.js';
export { memoryBackend } from './backend.js';
export type { RegistryBackend, BackendHost, StoredJob, HeldJob, BackendStats } from './backend.js';
export type {
  StreamStore,
  StoredStream,
  StoredChunk,
  StreamInit,
  StreamAppend,
  StreamAppendResult,
  ProducerTuple,
  StreamFork,
  StoredStreamFound,
  StreamCreated,
} from './streams.js';
export { TokenChannel } from './channel.js';
export type { ChannelReader, ReaderHost } from './channel.js';
export type { Logger } from './logger.js';
export { silentLogger } from './logger.js';
