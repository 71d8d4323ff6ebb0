/**
 * Job ids: `idPrefix` + a uuid v4 built in one flat string from Web Crypto's random bytes, many ids per
 * draw of bytes.
 */
import { JobRegistry } from '../../src/core/index.js';
import { idMaker, isValidJobId, uuidV4 } from '../../src/core/ids.js';

const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('ids are the prefix and a uuid v4; thousands in a row (across many draws of bytes) are all different', () => {
  const make = idMaker('run.7:');
  const ids = Array.from({ length: 20_000 }, make);
  for (const id of ids) {
    expect(id.startsWith('run.7:')).toBe(true);
    expect(id.slice(6)).toMatch(V4);
    expect(isValidJobId(id)).toBe(true);
  }
  expect(new Set(ids).size).toBe(ids.length);
  // Every random hex position takes every digit; the variant takes all four of its values.
  const uuids = ids.map((id) => id.slice(6));
  for (let at = 0; at < 36; at++) {
    if ([8, 13, 14, 18, 23].includes(at)) continue; // dashes, the version digit
    const digits = new Set(uuids.map((u) => u[at]));
    expect(digits.size).toBe(at === 19 ? 4 : 16);
  }
});

test('makers with different prefixes share the random bytes but never an id', () => {
  const a = idMaker('a-');
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const x = a();
    const y = uuidV4();
    expect(y).toMatch(V4);
    expect(seen.has(x.slice(2))).toBe(false);
    expect(seen.has(y)).toBe(false);
    seen.add(x.slice(2)).add(y);
  }
});

test('a registry names its jobs with its idPrefix', async () => {
  const r = new JobRegistry({ idPrefix: 'chat_' });
  const id = r.createJob();
  expect(id).toMatch(/^chat_[0-9a-f]{8}-/);
  expect(id.slice(5)).toMatch(V4);
  await r.dispose();
});
