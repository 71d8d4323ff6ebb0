/**
 * The shapes of OpenAI's Responses API (background mode) over a job: the Response object and the stream
 * events with their `sequence_number`. A job with N tokens streams, by sequence number:
 *
 *   0 `response.created`, 1 `response.in_progress`, 2 `response.output_item.added`,
 *   3 `response.content_part.added`, 4 + k `response.output_text.delta` (token k),
 *   then `response.output_text.done`, `response.content_part.done`, `response.output_item.done`,
 *   `response.completed` (4 + N to 7 + N); or `response.failed` / `response.cancelled` at 4 + N.
 *
 * Imports no `node:` module.
 */
import type { JobSnapshot, JobState } from '../core/types.js';

/** Events before the first token. */
export const PRELUDE = 4;

/** What the preset keeps of a create request, to echo it in the Response object. */
export interface ResponseInfo {
  model: string;
  metadata: Record<string, string>;
  instructions: string | null;
  maxOutputTokens: number | null;
}

export type ResponseStatus = 'queued' | 'in_progress' | 'completed' | 'failed' | 'cancelled';

/** The Response id of a job, and back. */
export const responseId = (jobId: string): string => `resp_${jobId}`;
export const jobIdOf = (responseId: string): string | undefined =>
  responseId.startsWith('resp_') ? responseId.slice(5) : undefined;
const messageId = (jobId: string): string => `msg_${jobId}`;

export function statusOf(state: JobState): ResponseStatus {
  return state === 'running' ? 'in_progress' : state;
}

function message(jobId: string, text: string, status: 'in_progress' | 'completed' | 'incomplete') {
  return {
    type: 'message',
    id: messageId(jobId),
    status,
    role: 'assistant',
    content: text === '' && status === 'in_progress' ? [] : [textPart(text)],
  };
}

function textPart(text: string) {
  return { type: 'output_text', text, annotations: [], logprobs: [] };
}

/** The Response object of a job: its status, and its output text so far (`undefined`: not read). */
export function responseObject(
  snap: Pick<JobSnapshot, 'id' | 'createdAt'>,
  status: ResponseStatus,
  info: ResponseInfo,
  text: string | undefined,
  error?: string,
): Record<string, unknown> {
  const output =
    text === undefined || (text === '' && status === 'queued')
      ? []
      : [
          message(
            snap.id,
            text,
            status === 'completed' ? 'completed' : status === 'in_progress' ? 'in_progress' : 'incomplete',
          ),
        ];
  return {
    id: responseId(snap.id),
    object: 'response',
    created_at: Math.floor(snap.createdAt.toMillis() / 1000),
    status,
    background: true,
    error: status === 'failed' ? { code: 'server_error', message: error ?? 'job failed' } : null,
    incomplete_details: null,
    instructions: info.instructions,
    max_output_tokens: info.maxOutputTokens,
    metadata: info.metadata,
    model: info.model,
    output,
    output_text: text ?? '',
    parallel_tool_calls: true,
    temperature: null,
    tool_choice: 'auto',
    tools: [],
    top_p: null,
    usage: null,
  };
}

/** One stream event, framed for SSE. */
export function responseEvent(type: string, sequence: number, fields: Record<string, unknown>): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence, ...fields })}\n\n`;
}

/** The events before the first token with a sequence number above `after`. */
export function preludeEvents(
  snap: Pick<JobSnapshot, 'id' | 'createdAt'>,
  info: ResponseInfo,
  after: number,
): string {
  const events: Array<[string, Record<string, unknown>]> = [
    ['response.created', { response: responseObject(snap, 'queued', info, undefined) }],
    ['response.in_progress', { response: responseObject(snap, 'in_progress', info, undefined) }],
    ['response.output_item.added', { output_index: 0, item: message(snap.id, '', 'in_progress') }],
    [
      'response.content_part.added',
      { item_id: messageId(snap.id), output_index: 0, content_index: 0, part: textPart('') },
    ],
  ];
  let out = '';
  events.forEach(([type, fields], seq) => {
    if (seq > after) out += responseEvent(type, seq, fields);
  });
  return out;
}

/**
 * Text deltas of one job's stream. The event is written from a template made once per stream: only the
 * sequence number and the delta are encoded per token (the same bytes as `responseEvent`, about 4x less
 * work on the per-token path).
 */
export function deltaEncoder(jobId: string): (seq: number, delta: string) => string {
  const head =
    'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":';
  const middle = `,"item_id":${JSON.stringify(messageId(jobId))},"output_index":0,"content_index":0,"delta":`;
  return (seq, delta) => `${head}${PRELUDE + seq}${middle}${JSON.stringify(delta)},"logprobs":[]}\n\n`;
}

/** The events after the last token (`count` tokens), with a sequence number above `after`. */
export function endEvents(
  snap: Pick<JobSnapshot, 'id' | 'createdAt'>,
  info: ResponseInfo,
  state: 'completed' | 'failed' | 'cancelled',
  error: string | undefined,
  count: number,
  text: string,
  after: number,
): string {
  const first = PRELUDE + count;
  const events: Array<[string, Record<string, unknown>]> =
    state === 'completed'
      ? [
          [
            'response.output_text.done',
            { item_id: messageId(snap.id), output_index: 0, content_index: 0, text, logprobs: [] },
          ],
          [
            'response.content_part.done',
            { item_id: messageId(snap.id), output_index: 0, content_index: 0, part: textPart(text) },
          ],
          ['response.output_item.done', { output_index: 0, item: message(snap.id, text, 'completed') }],
          ['response.completed', { response: responseObject(snap, 'completed', info, text) }],
        ]
      : [[`response.${state}`, { response: responseObject(snap, state, info, text, error) }]];
  let out = '';
  events.forEach(([type, fields], i) => {
    if (first + i > after) out += responseEvent(type, first + i, fields);
  });
  return out;
}
