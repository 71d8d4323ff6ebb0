/**
 * The example server's AI SDK chat route (`/api/chat`, for `useChat`) in front of the simulated model: the
 * last user message's text is the prompt, each word a `text-delta` (with the spaces between words), and
 * the request body's `delay_ms`, `max_tokens` and `fail_after` are the knobs, as on `/v1/inference`.
 */
import type { UIMessageChunk } from 'ai';
import { concat, map, of, type Observable } from 'rxjs';
import { PublicError } from '../src/core/index.js';
import type { ChatRequest } from '../src/ai-sdk/index.js';
import { modelRequestParser, simulateModel, type ModelRequest, type ModelRequestLimits } from './model.js';

/** The text of a chat's last user message (its text parts, joined). */
export function lastUserText(request: ChatRequest): string {
  for (let i = request.messages.length - 1; i >= 0; i--) {
    const message = request.messages[i]!;
    if (message.role !== 'user') continue;
    if (!Array.isArray(message.parts)) return '';
    return message.parts
      .map((p) => (p?.type === 'text' && typeof p.text === 'string' ? p.text : ''))
      .join('');
  }
  return '';
}

/**
 * Maps a chat request onto the simulated model, under the same limits as `POST /v1/inference`.
 *
 * @throws PublicError saying what is wrong (the route answers `400 INVALID_PAYLOAD` with it).
 */
export function chatPayloadParser(limits: ModelRequestLimits): (request: ChatRequest) => ModelRequest {
  const parse = modelRequestParser(limits, { prompt: 'the last user message' });
  return (request) => {
    const prompt = lastUserText(request);
    if (prompt.trim() === '') throw new PublicError('the chat has no user message with text to answer');
    const body: Record<string, unknown> = { prompt };
    for (const key of ['max_tokens', 'delay_ms', 'fail_after'] as const)
      if (request[key] !== undefined) body[key] = request[key];
    return parse(body);
  };
}

/**
 * The simulated model as a chat's answer: `start`, `text-start`, one `text-delta` per word (a space
 * before each but the first), `text-end`, `finish`. Its failure (`fail_after`) fails the job: readers get
 * the `error` chunk the route sends.
 */
export function simulateChat(request: ModelRequest): Observable<UIMessageChunk> {
  const text = 'text-1';
  return concat(
    of<UIMessageChunk[]>({ type: 'start' }, { type: 'text-start', id: text }),
    simulateModel(request).pipe(
      map((word, i): UIMessageChunk => ({
        type: 'text-delta',
        id: text,
        delta: i === 0 ? word : ` ${word}`,
      })),
    ),
    of<UIMessageChunk[]>({ type: 'text-end', id: text }, { type: 'finish', finishReason: 'stop' }),
  );
}
