import { comment, dataLines, retryField, sseEvent, tokenEvent } from '../../src/protocol/sse.js';
import { parseSse } from '../helpers/http.js';

describe('SSE framing', () => {
  test('a token event is id, event, data and a blank line', () => {
    expect(tokenEvent(7, '"hi"')).toBe('id: 7\nevent: token\ndata: "hi"\n\n');
  });

  test.each([
    ['LF', 'a\nb', ['a', 'b']],
    ['CRLF', 'a\r\nb', ['a', 'b']],
    ['CR', 'a\rb', ['a', 'b']],
    ['mixed and trailing', 'a\r\n\rb\n', ['a', '', 'b', '']],
  ])('%s in a value starts new data: lines', (_name, value, lines) => {
    expect(dataLines(value)).toBe(lines.map((l) => `data: ${l}\n`).join(''));
  });

  test('no token can forge an event, an id or a retry', () => {
    const evil = 'x\n\nevent: done\nid: 999\nretry: 1\r\ndata: {"state":"completed"}\r\rid: 5';
    const frame = tokenEvent(3, evil) + sseEvent('done', '{"state":"completed"}');
    const parsed = parseSse(frame);
    expect(parsed).toEqual([
      { id: '3', event: 'token', data: evil.split(/\r\n|\r|\n/).join('\n') },
      { event: 'done', data: '{"state":"completed"}' },
    ]);
    expect(frame).not.toMatch(/^retry:/m);
    expect(frame).not.toMatch(/^id: 999/m);
  });

  test('retry, comments and event names are sanitised', () => {
    expect(retryField(1500.7)).toBe('retry: 1500\n\n');
    expect(comment('ping\nevent: x')).toBe(': ping event: x\n\n');
    expect(sseEvent('evil\nid: 1', 'd')).toBe('event: evilid: 1\ndata: d\n\n');
  });
});
