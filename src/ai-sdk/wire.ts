/**
 * The AI SDK's UI message stream over a chat job: each token of the job is one `UIMessageChunk`, written
 * as `id: <seq>` and `data: <json chunk>`; the end is `data: [DONE]`, after an `abort` chunk (cancelled) or
 * an `error` chunk (failed). Also the chat ids and the job keys they map to. Imports no `node:` module, and
 * `ai` only for its types.
 */
import type { UIMessageChunk } from 'ai';
import { InvalidArgumentError, messageOf } from '../core/errors.js';
import type { StreamEncoder } from '../protocol/stream.js';

/** The header that tells an AI SDK client the body is a UI message stream, and its version. */
export const UI_MESSAGE_STREAM_HEADER = 'x-vercel-ai-ui-message-stream';

/** The last event of every UI message stream. */
export const DONE = 'data: [DONE]\n\n';

/** Longest chat id accepted, in characters. */
export const MAX_CHAT_ID_LENGTH = 128;

const CHAT_ID = /^[A-Za-z0-9._:-]+$/;

/** Between the principal's id and the chat id in a job key; a chat id never holds it. */
const KEY_SEPARATOR = '/';

/** Longest job key (the registry's bound). */
const MAX_KEY_LENGTH = 256;

/**
 * Whether `id` can name a chat: 1-128 letters, digits, `.`, `_`, `:` or `-`, not `.` or `..` (which no
 * URL keeps as a path segment). The AI SDK's own ids, UUIDs and nanoids all are.
 */
export function isValidChatId(id: unknown): id is string {
  return (
    typeof id === 'string' &&
    id.length > 0 &&
    id.length <= MAX_CHAT_ID_LENGTH &&
    CHAT_ID.test(id) &&
    id !== '.' &&
    id !== '..'
  );
}

/**
 * The job key of a chat: the chat id alone on an open handler, else the principal's id, `/`, and the chat
 * id, so two principals' chats never share a key, whatever ids their clients choose (a chat id holds no
 * `/`, so the key names one principal and one chat). `registry.activeJob(chatKey(principal, chatId))`
 * finds the chat's live answer.
 *
 * @throws InvalidArgumentError for a malformed chat id, or when the key would pass 256 characters.
 * @example
 * chatKey(undefined, 'Xk9'); // 'Xk9'
 * chatKey('key-alice', 'Xk9'); // 'key-alice/Xk9'
 */
export function chatKey(principal: string | undefined, chatId: string): string {
  if (!isValidChatId(chatId))
    throw new InvalidArgumentError(
      `a chat id must be 1-${MAX_CHAT_ID_LENGTH} letters, digits, '.', '_', ':' or '-' (not '.' or '..')`,
    );
  if (principal === undefined) return chatId;
  const key = `${principal}${KEY_SEPARATOR}${chatId}`;
  if (key.length > MAX_KEY_LENGTH)
    throw new InvalidArgumentError(
      `the principal's id and the chat id make a job key of ${key.length} characters; at most ${MAX_KEY_LENGTH} fit (use a shorter chat id)`,
    );
  return key;
}

/**
 * One chunk of the stream: `id: <seq>` and its JSON (JSON has no raw line break, so it is one `data:`
 * line). A chunk JSON cannot encode (a cycle, a BigInt) is sent as an `error` chunk saying so.
 */
export function chunkEvent(seq: number, chunk: unknown): string {
  let data: string | undefined;
  try {
    data = JSON.stringify(chunk);
  } catch (e) {
    data = JSON.stringify({
      type: 'error',
      errorText: `job-registry: a chunk is not JSON (${messageOf(e)})`,
    });
  }
  return `id: ${seq}\ndata: ${data ?? 'null'}\n\n`;
}

/**
 * The encoder of one chat job's stream. A `start` chunk without a `messageId` gets the job's id as its
 * `messageId`, so every reader of the answer (the first, and each one that resumes after a reload) names
 * the assistant message alike. The end: nothing more for a completed job, `{"type":"abort"}` for a
 * cancelled one, `{"type":"error","errorText"}` for a failed one (`errorText` as the policy shows it:
 * redacted unless public), then `[DONE]`.
 */
export function uiMessageEncoder(jobId: string): StreamEncoder<UIMessageChunk> {
  return {
    token: (ev) => {
      const chunk = ev.token;
      if (chunk !== null && typeof chunk === 'object' && chunk.type === 'start' && chunk.messageId == null)
        return chunkEvent(ev.seq, { ...chunk, messageId: jobId });
      return chunkEvent(ev.seq, chunk);
    },
    end: (state, error, count) => {
      if (state === 'completed') return DONE;
      const last: UIMessageChunk =
        state === 'cancelled' ? { type: 'abort' } : { type: 'error', errorText: error ?? 'job failed' };
      return chunkEvent(count, last) + DONE;
    },
  };
}
