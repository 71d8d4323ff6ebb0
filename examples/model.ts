/**
 * The example server's simulated model: it streams the prompt's whitespace-separated words in order,
 * cycling, as string tokens.
 */
import { Observable } from 'rxjs';
import { PublicError } from '../src/core/index.js';

/** What a POST to the example server carries. */
export interface ModelRequest {
  prompt: string;
  /** Tokens to emit. Defaults to the number of words. */
  max_tokens?: number;
  /** Wait between tokens, in ms. Defaults to 0. */
  delay_ms?: number;
  /** Fail with "simulated failure" after this many tokens. */
  fail_after?: number;
}

/** What the simulated model accepts at most, whatever the server's limits. */
export const MODEL_LIMITS = Object.freeze({ prompt: 100_000, max_tokens: 1_000_000, delay_ms: 60_000 });

/** The server's limits the parser enforces, each named by the setting that sets it. */
export interface ModelRequestLimits {
  /** Tokens one job may have (`MAX_TOKENS_PER_JOB`). Defaults to {@link MODEL_LIMITS}`.max_tokens`. */
  maxTokens?: number;
  /** Largest `delay_ms` (`MAX_DELAY_MS`). Defaults to {@link MODEL_LIMITS}`.delay_ms`. */
  maxDelayMs?: number;
}

/** How a request's fields are named in messages, when the client sent them under other names. */
export type FieldNames = Partial<Record<keyof ModelRequest, string>>;

/**
 * A parser of POSTed bodies that refuses, with a message saying which limit and how to stay within it,
 * any request past the server's limits: such a request fails at POST (`400 INVALID_PAYLOAD`), not later.
 * It throws `PublicError`, so every route shows the message (the Responses route shows only those).
 *
 * @param names - what messages call each field (the Responses route maps its own fields onto these).
 */
export function modelRequestParser(
  limits: ModelRequestLimits = {},
  names: FieldNames = {},
): (body: unknown) => ModelRequest {
  const maxTokens = Math.min(limits.maxTokens ?? Infinity, MODEL_LIMITS.max_tokens);
  const maxDelay = Math.min(limits.maxDelayMs ?? Infinity, MODEL_LIMITS.delay_ms);
  const n = (key: keyof ModelRequest): string => names[key] ?? `"${key}"`;
  const why = (key: string, max: number): string =>
    key === 'max_tokens' && max === limits.maxTokens
      ? ` (this server allows at most ${max} tokens per job: MAX_TOKENS_PER_JOB)`
      : key === 'delay_ms' && max === limits.maxDelayMs
        ? ` (this server allows a delay of at most ${max} ms: MAX_DELAY_MS)`
        : '';
  return (body) => {
    if (body === null || typeof body !== 'object' || Array.isArray(body))
      throw new PublicError('the payload must be a JSON object { "prompt": "..." }');
    const b = body as Record<string, unknown>;
    if (typeof b.prompt !== 'string' || b.prompt.trim() === '')
      throw new PublicError(`${n('prompt')} must be a non-empty string`);
    if (b.prompt.length > MODEL_LIMITS.prompt)
      throw new PublicError(`${n('prompt')} is longer than ${MODEL_LIMITS.prompt} characters`);
    const req: ModelRequest = { prompt: b.prompt };
    for (const key of ['max_tokens', 'delay_ms', 'fail_after'] as const) {
      const v = b[key];
      if (v === undefined) continue;
      const max = key === 'delay_ms' ? maxDelay : maxTokens;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
        throw new PublicError(`${n(key)} must be a whole number from 0 to ${max}${why(key, max)}`);
      req[key] = v;
    }
    if (req.max_tokens === undefined) {
      const words = wordsOf(req.prompt).length;
      if (words > maxTokens)
        throw new PublicError(
          `${n('prompt')} has ${words} words, and ${n('max_tokens')} defaults to that; send ${n('max_tokens')} from 0 to ${maxTokens}${why('max_tokens', maxTokens)}`,
        );
    }
    return req;
  };
}

/** Checks a POSTed body against the model's own bounds only; throws with a message saying what is wrong. */
export const parseModelRequest: (body: unknown) => ModelRequest = modelRequestParser();

function wordsOf(prompt: string): string[] {
  return prompt.split(/\s+/).filter((w) => w !== '');
}

/** The simulated model as an executor: an Observable of words that stops when unsubscribed. */
export function simulateModel(request: ModelRequest | undefined): Observable<string> {
  return new Observable<string>((sub) => {
    if (request === undefined) {
      sub.error(new Error('no payload'));
      return undefined;
    }
    const words = wordsOf(request.prompt);
    const max = request.max_tokens ?? words.length;
    const delay = request.delay_ms ?? 0;
    let i = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let immediate: ReturnType<typeof setImmediate> | undefined;
    const tick = (): void => {
      if (request.fail_after !== undefined && i >= request.fail_after)
        return sub.error(new PublicError('simulated failure'));
      if (i >= max) return sub.complete();
      sub.next(words[i % words.length]!);
      i++;
      schedule();
    };
    const schedule = (): void => {
      if (delay > 0) timer = setTimeout(tick, delay);
      else immediate = setImmediate(tick);
    };
    schedule();
    return () => {
      if (timer !== undefined) clearTimeout(timer);
      if (immediate !== undefined) clearImmediate(immediate);
    };
  });
}
