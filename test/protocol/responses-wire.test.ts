import { PRELUDE, deltaEncoder, responseEvent } from '../../src/protocol/responses-wire.js';

test('the per-stream delta template writes the same bytes as the generic event', () => {
  const enc = deltaEncoder('job-1');
  for (const [seq, d] of [
    [0, 'a'],
    [7, ' "quoted"\nline'],
    [12, '\u2028x\\'],
    [99, ''],
  ] as const) {
    const want = responseEvent('response.output_text.delta', PRELUDE + seq, {
      item_id: 'msg_job-1',
      output_index: 0,
      content_index: 0,
      delta: d,
      logprobs: [],
    });
    expect(enc(seq, d)).toBe(want);
  }
});
