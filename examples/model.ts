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

const LIMITS = { prompt: 100_000, max_tokens: 1_000_000, delay_ms: 60_000 };

/** Checks a POSTed body; throws with a message saying what is wrong (answered as 400). */
export function parseModelRequest(body: unknown): ModelRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new Error('the payload must be a JSON object { "prompt": "..." }');
  const b = body as Record<string, unknown>;
  if (typeof b.prompt !== 'string' || b.prompt.trim() === '')
    throw new Error('"prompt" must be a non-empty string');
  if (b.prompt.length > LIMITS.prompt) throw new Error(`"prompt" is longer than ${LIMITS.prompt} characters`);
  const req: ModelRequest = { prompt: b.prompt };
  for (const key of ['max_tokens', 'delay_ms', 'fail_after'] as const) {
    const v = b[key];
    if (v === undefined) continue;
    const max = key === 'delay_ms' ? LIMITS.delay_ms : LIMITS.max_tokens;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
      throw new Error(`"${key}" must be a whole number from 0 to ${max}`);
    req[key] = v;
  }
  return req;
}

/** The simulated model as an executor: an Observable of words that stops when unsubscribed. */
export function simulateModel(request: ModelRequest | undefined): Observable<string> {
  return new Observable<string>((sub) => {
    if (request === undefined) {
      sub.error(new Error('no payload'));
      return undefined;
    }
    const words = request.prompt.split(/\s+/).filter((w) => w !== '');
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
