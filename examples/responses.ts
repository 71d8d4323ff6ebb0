/**
 * The example server's OpenAI-compatible route (`/v1/responses`, background mode) in front of the
 * simulated model: a create request's fields mapped onto the model's knobs, under the same limits as
 * `POST /v1/inference`, and the model's words as text deltas.
 */
import { map, type Observable } from 'rxjs';
import { PublicError } from '../src/core/index.js';
import type { ResponseCreate } from '../src/http/index.js';
import { modelRequestParser, simulateModel, type ModelRequest, type ModelRequestLimits } from './model.js';

/** The `metadata` keys that set the model's knobs; OpenAI metadata values are strings. */
const KNOBS = ['delay_ms', 'fail_after'] as const;

/**
 * Maps a create request onto the simulated model: `input` (a string) is the prompt, `max_output_tokens`
 * is `max_tokens`, `metadata.delay_ms` and `metadata.fail_after` (whole numbers written as strings) are
 * the knobs of the same names. `model` is taken as given (the preset echoes it).
 *
 * @throws PublicError saying what is wrong (the preset answers `400 INVALID_PAYLOAD` with it).
 */
export function responsesPayloadParser(
  limits: ModelRequestLimits,
): (request: ResponseCreate) => ModelRequest {
  const parse = modelRequestParser(limits, {
    prompt: '"input"',
    max_tokens: '"max_output_tokens"',
    delay_ms: '"metadata.delay_ms"',
    fail_after: '"metadata.fail_after"',
  });
  return (request) => {
    if (typeof request.input !== 'string')
      throw new PublicError(
        '"input" must be a string: the simulated model takes text, not a list of input items',
      );
    if (request.model !== undefined && typeof request.model !== 'string')
      throw new PublicError('"model" must be a string');
    const body: Record<string, unknown> = { prompt: request.input };
    if (request.max_output_tokens !== undefined && request.max_output_tokens !== null)
      body.max_tokens = request.max_output_tokens;
    const metadata: unknown = request.metadata;
    if (metadata !== undefined && metadata !== null) {
      if (typeof metadata !== 'object' || Array.isArray(metadata))
        throw new PublicError('"metadata" must be an object of strings');
      for (const key of KNOBS) {
        const value = (metadata as Record<string, unknown>)[key];
        if (value === undefined) continue;
        if (typeof value !== 'string' || !/^\d{1,15}$/.test(value))
          throw new PublicError(
            `"metadata.${key}" must be a whole number written as a string (metadata values are strings), e.g. "50"`,
          );
        body[key] = Number(value);
      }
    }
    return parse(body);
  };
}

/** The simulated model as the Responses route runs it: its words as text deltas, a space before each but the first. */
export function simulateText(request: ModelRequest | undefined): Observable<string> {
  return simulateModel(request).pipe(map((word, i) => (i === 0 ? word : ` ${word}`)));
}
