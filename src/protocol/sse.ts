/**
 * Server-Sent Events framing as pure functions. Any CR, LF or CRLF inside a value starts a new `data:`
 * line, and field names and ids never come from user input, so no token can forge an event, an id or a
 * retry.
 */

const LINE_BREAK = /\r\n|\r|\n/;

// Cheaper than the regex on the per-token path, where nearly every value is one line.
const hasLineBreak = (value: string): boolean => value.indexOf('\n') !== -1 || value.indexOf('\r') !== -1;

/** `data:` lines for a value; each line break in it starts a new `data:` line. */
export function dataLines(value: string): string {
  if (!hasLineBreak(value)) return `data: ${value}\n`;
  let out = '';
  for (const line of value.split(LINE_BREAK)) out += `data: ${line}\n`;
  return out;
}

/** One complete SSE event (ending in the blank line). `event` and `id` must be plain words or numbers. */
export function sseEvent(event: string, data: string, id?: number | string): string {
  const idLine = id === undefined ? '' : `id: ${sanitizeField(String(id))}\n`;
  return `${idLine}event: ${sanitizeField(event)}\n${dataLines(data)}\n`;
}

/** A token event: `id: <seq>`, `event: token`, `data: <serialized>`. */
export function tokenEvent(seq: number, data: string): string {
  if (!hasLineBreak(data)) return `id: ${seq}\nevent: token\ndata: ${data}\n\n`;
  return `id: ${seq}\nevent: token\n${dataLines(data)}\n`;
}

/** A `retry:` field telling clients how many ms to wait before reconnecting. */
export function retryField(ms: number): string {
  return `retry: ${Math.max(0, Math.floor(ms))}\n\n`;
}

/** A comment line (`: text`), ignored by clients; keeps idle connections open through proxies. */
export function comment(text: string): string {
  return `: ${text.replace(/[\r\n]+/g, ' ')}\n\n`;
}

function sanitizeField(value: string): string {
  return value.replace(/[\r\n]/g, '');
}
