/**
 * job-registry/ai-sdk/client: the chat transport for the AI SDK's `useChat` (or any `AbstractChat`) in
 * front of the chat routes of `job-registry/ai-sdk`: the AI SDK's own `DefaultChatTransport` (send,
 * resume), plus `stop(chatId)`, which stops the chat's answer on the server. The one module of this
 * library that loads `ai`; imports nothing from Node.
 *
 * @module job-registry/ai-sdk/client
 */
import { DefaultChatTransport, type UIMessage } from 'ai';
import { ClientError, errorFrom } from '../client/errors.js';

export { ClientError } from '../client/errors.js';

/** Options of {@link JobChatTransport}: those of the AI SDK's `DefaultChatTransport` (`api`, `headers`...). */
export type JobChatTransportOptions<M extends UIMessage = UIMessage> = NonNullable<
  ConstructorParameters<typeof DefaultChatTransport<M>>[0]
>;

/** Options of {@link JobChatTransport.stop}. */
export interface StopOptions {
  /** Headers added to the transport's own (`headers` option) for this request. */
  headers?: Record<string, string> | Headers;
  /** Aborts the request (not the answer: the server decides that). */
  signal?: AbortSignal;
}

/**
 * The AI SDK's `DefaultChatTransport` for the chat routes of `job-registry/ai-sdk`: `sendMessages` POSTs
 * to `api` (default `/api/chat`), `reconnectToStream` (what `resumeStream()` calls) GETs
 * `{api}/{chatId}/stream`, and {@link JobChatTransport.stop} DELETEs it, which stops the answer wherever it
 * runs. The transport's abort signal is never a stop: the AI SDK fires it on `chat.stop()` and on a second
 * `resumeStream()`, and then only the connection closes; the answer goes on, to be resumed.
 *
 * @example
 * const transport = new JobChatTransport({ api: '/api/chat' });
 * const { messages, sendMessage, resumeStream } = useChat({ id: chatId, transport, resume: true });
 * const stop = () => transport.stop(chatId); // the stream then ends and the chat is ready again
 */
export class JobChatTransport<M extends UIMessage = UIMessage> extends DefaultChatTransport<M> {
  constructor(options: JobChatTransportOptions<M> = {}) {
    super(options);
  }

  /**
   * Stops the chat's live answer on the server (`DELETE {api}/{chatId}/stream`), wherever it runs: its
   * model's abort signal fires, and every open stream of it ends with an `abort` chunk. Resolves `true`
   * when it stopped one, `false` when the chat had none live.
   *
   * @throws (rejects) ClientError carrying `status` and the server's `code` for any other answer
   * (`401 UNAUTHENTICATED`, `400 INVALID_CHAT_ID`...), or `INVALID_CHAT_ID` for an id no URL can carry.
   */
  async stop(chatId: string, options: StopOptions = {}): Promise<boolean> {
    if (typeof chatId !== 'string' || chatId === '' || chatId === '.' || chatId === '..')
      throw new ClientError(
        'job-registry: a chat id must be a non-empty string other than "." or ".."',
        undefined,
        'INVALID_CHAT_ID',
      );
    const url = appendPath(this.api, `/${encodeURIComponent(chatId)}/stream`);
    const headers = { ...headerRecord(await resolve(this.headers)), ...headerRecord(options.headers) };
    const credentials = await resolve(this.credentials);
    const init: RequestInit = { method: 'DELETE', headers };
    if (credentials !== undefined) init.credentials = credentials;
    if (options.signal !== undefined) init.signal = options.signal;
    // Read when called, not kept: another library may patch globalThis.fetch after this one was made.
    const response = await (this.fetch ?? globalThis.fetch)(url, init);
    if (response.status === 204) return false;
    if (!response.ok) throw await errorFrom(response);
    return true;
  }
}

/** `path` appended to the URL's path, before its query or fragment (as the AI SDK builds its resume URL). */
function appendPath(url: string, path: string): string {
  const cut = url.search(/[?#]/);
  const base = cut === -1 ? url : url.slice(0, cut);
  const rest = cut === -1 ? '' : url.slice(cut);
  return `${base.endsWith('/') ? base.slice(0, -1) : base}${path}${rest}`;
}

type Resolvable<T> = T | PromiseLike<T> | (() => T | PromiseLike<T>);

function resolve<T>(value: Resolvable<T> | undefined): Promise<T | undefined> {
  return Promise.resolve(typeof value === 'function' ? (value as () => T | PromiseLike<T>)() : value);
}

function headerRecord(headers: Record<string, string> | Headers | undefined): Record<string, string> {
  if (headers === undefined) return {};
  if (typeof Headers !== 'undefined' && headers instanceof Headers) {
    const out: Record<string, string> = {};
    headers.forEach((value, name) => (out[name] = value));
    return out;
  }
  return { ...(headers as Record<string, string>) };
}
