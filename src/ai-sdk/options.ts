/** The options of the AI SDK chat routes, and the request and context their executor gets. */
import type { UIMessage } from 'ai';
import type { DurationInput } from '../core/duration.js';
import type { ExecutionContext } from '../core/types.js';
import type { AccessOptions, Principal } from '../protocol/access.js';
import type { HandlerOptions } from '../protocol/options.js';
import type { ChatSource } from './source.js';

/**
 * A chat request, as the AI SDK's `DefaultChatTransport` (and so `useChat`) POSTs it: the chat's id, its
 * messages, what triggered the request, and any fields the client added with its `body` option.
 */
export interface ChatRequest<M extends UIMessage = UIMessage> {
  /** The chat's id (checked: 1-128 letters, digits, `.`, `_`, `:` or `-`). */
  id: string;
  /** The chat's messages, the last one the user's (or the one to regenerate after). */
  messages: M[];
  /** `submit-message` (a new message) or `regenerate-message`. */
  trigger?: 'submit-message' | 'regenerate-message';
  /** The message to regenerate, or the one a submitted message replaces. */
  messageId?: string | undefined;
  /** Fields the client added (the transport's or `sendMessage`'s `body`). */
  [field: string]: unknown;
}

/** The second argument of a {@link ChatExecutor}: the job's context, and whose chat it is. */
export interface ChatContext extends ExecutionContext {
  /** The chat's id, as the client sent it. */
  chatId: string;
  /** The principal `authenticate` found, when it is set. */
  principal?: Principal;
}

/**
 * Makes a chat's answer: `streamText`'s result (or its `toUIMessageStream()`), or any source of UI message
 * chunks (see {@link ChatSource}), or a Promise of one. Pass `context.signal` to `streamText` as its
 * `abortSignal`: it aborts when the answer is stopped (`DELETE`, from any process) or the job goes.
 */
export type ChatExecutor<P> = (payload: P, context: ChatContext) => ChatSource | PromiseLike<ChatSource>;

/** Options of the chat routes (both handler forms); `Req` is the request type `authenticate` receives. */
export interface ChatOptions<P, Req>
  extends
    AccessOptions<Req>,
    Pick<
      HandlerOptions<unknown, P, Req>,
      | 'maxBodyBytes'
      | 'bodyTimeoutMs'
      | 'heartbeatMs'
      | 'maxBufferedBytes'
      | 'cors'
      | 'exposeErrors'
      | 'maxJobsPerPrincipal'
      | 'maxStreamsPerJob'
      | 'maxStreamsPerPrincipal'
      | 'maxConnections'
      | 'retryAfter'
      | 'retryAfterSeconds'
      | 'logger'
    > {
  /** Where the routes live: `POST {basePath}`, `GET` and `DELETE {basePath}/{chatId}/stream`. @defaultValue `/api/chat` */
  basePath?: string;
  /** Makes the answer of a chat request (its payload as `toPayload` made it). */
  execute: ChatExecutor<P>;
  /**
   * Checks a chat request and makes the executor's payload of it; throw to answer `400 INVALID_PAYLOAD`
   * (a `PublicError`'s message is shown). @defaultValue the request as it is
   */
  toPayload?: (request: ChatRequest, principal: Principal | undefined) => P;
  /**
   * How long a stopped answer's source may take to end (`streamText` sends its `abort` chunk and calls
   * `onEnd` / `onFinish`) before it is cancelled. @defaultValue 5 s
   */
  endTimeout?: DurationInput;
}
