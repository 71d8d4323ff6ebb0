import { InvalidArgumentError } from '../../src/core/errors.js';
import {
  MAX_STREAM_TOKEN_LENGTH,
  MAX_STREAM_TOKEN_PRINCIPAL_BYTES,
  streamTokenSigner,
  type StreamTokenOptions,
} from '../../src/protocol/stream-token.js';

const SECRET = 'a-secret-of-at-least-32-characters!!';
const JOB = 'job-0b6c2a52-9f0e-4d0b-a0a5-0f6e7d8c9b1a';
const T0 = 1_750_000_000_000;

/** A signer on a clock the test moves. */
function signerAt(start = T0, options: Partial<StreamTokenOptions> = {}) {
  const clock = { t: start };
  const signer = streamTokenSigner({ secret: SECRET, now: () => clock.t, ...options });
  return { signer, clock };
}

/** Base64url of UTF-8, as the token writes its principal field. */
const b64url = (text: string): string => Buffer.from(text, 'utf8').toString('base64url');

describe('streamTokenSigner: round trip', () => {
  test.each([
    ['ascii', 'user-42'],
    ['utf-8', 'ünïcødé 用户 🙂'],
    ['separators inside', 'a.b\nc\n1'],
    ['longest', 'x'.repeat(MAX_STREAM_TOKEN_PRINCIPAL_BYTES)],
  ])('a signed token verifies to its principal (%s)', async (_name, principal) => {
    const { signer } = signerAt();
    const token = await signer.sign(JOB, principal);
    expect(token).toMatch(/^[0-9a-z]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    expect(token.length).toBeLessThanOrEqual(MAX_STREAM_TOKEN_LENGTH);
    await expect(signer.verify(token, JOB)).resolves.toBe(principal);
  });

  test('the format is <expiry base36>.<base64url(principal)>.<base64url(mac)> with the default 5 min ttl', async () => {
    const { signer } = signerAt();
    expect(signer.ttlMs).toBe(300_000);
    const [expiry, principal, mac] = (await signer.sign(JOB, 'alice')).split('.');
    expect(parseInt(expiry!, 36)).toBe(T0 + 300_000);
    expect(principal).toBe(b64url('alice'));
    expect(Buffer.from(mac!, 'base64url')).toHaveLength(32);
  });

  test('the mac is HMAC-SHA256 over jobId \\n principalId \\n expiry', async () => {
    const { createHmac } = await import('node:crypto');
    const { signer } = signerAt();
    const [expiry, , mac] = (await signer.sign(JOB, 'bob')).split('.');
    expect(mac).toBe(createHmac('sha256', SECRET).update(`${JOB}\nbob\n${expiry}`).digest('base64url'));
  });

  test('a token survives a URL query unchanged', async () => {
    const { signer } = signerAt();
    const token = await signer.sign(JOB, 'carol ü');
    expect(encodeURIComponent(token)).toBe(token);
    const query = new URL(`http://x/v1/inference/${JOB}/stream?token=${token}`).searchParams;
    await expect(signer.verify(query.get('token')!, JOB)).resolves.toBe('carol ü');
  });

  test('a second signer with the same secret verifies (shared between processes)', async () => {
    const token = await signerAt().signer.sign(JOB, 'dave');
    await expect(signerAt().signer.verify(token, JOB)).resolves.toBe('dave');
  });

  test('a Uint8Array secret works, and changes to the caller buffer before first use do not change the key', async () => {
    const bytes = new Uint8Array(32).fill(7);
    const signer = streamTokenSigner({ secret: bytes, now: () => T0 });
    bytes.fill(9); // the key is imported lazily, on the first sign or verify
    const token = await signer.sign(JOB, 'erin');
    await expect(signer.verify(token, JOB)).resolves.toBe('erin');
    const same = streamTokenSigner({ secret: new Uint8Array(32).fill(7), now: () => T0 });
    await expect(same.verify(token, JOB)).resolves.toBe('erin');
    await expect(
      streamTokenSigner({ secret: bytes, now: () => T0 }).verify(token, JOB),
    ).resolves.toBeUndefined();
  });
});

describe('streamTokenSigner: verify refuses', () => {
  test('a token for another job id', async () => {
    const { signer } = signerAt();
    const token = await signer.sign(JOB, 'alice');
    await expect(signer.verify(token, 'job-other')).resolves.toBeUndefined();
    await expect(signer.verify(token, JOB)).resolves.toBe('alice');
  });

  test('an expired token: valid until the expiry, refused from it on', async () => {
    const { signer, clock } = signerAt(T0, { ttlMs: 1000 });
    const token = await signer.sign(JOB, 'alice');
    clock.t = T0 + 999;
    await expect(signer.verify(token, JOB)).resolves.toBe('alice');
    clock.t = T0 + 1000;
    await expect(signer.verify(token, JOB)).resolves.toBeUndefined();
    clock.t = T0 + 10 * 60_000;
    await expect(signer.verify(token, JOB)).resolves.toBeUndefined();
  });

  test('any token while the clock answers NaN (fails closed)', async () => {
    const { signer, clock } = signerAt();
    const token = await signer.sign(JOB, 'alice');
    clock.t = NaN;
    await expect(signer.verify(token, JOB)).resolves.toBeUndefined();
  });

  test('a tampered principal', async () => {
    const { signer } = signerAt();
    const [expiry, , mac] = (await signer.sign(JOB, 'alice')).split('.');
    const forged = `${expiry}.${b64url('mallory')}.${mac}`;
    await expect(signer.verify(forged, JOB)).resolves.toBeUndefined();
  });

  test('a tampered (extended) expiry', async () => {
    const { signer } = signerAt();
    const [expiry, principal, mac] = (await signer.sign(JOB, 'alice')).split('.');
    const later = (parseInt(expiry!, 36) + 60_000).toString(36);
    await expect(signer.verify(`${later}.${principal}.${mac}`, JOB)).resolves.toBeUndefined();
  });

  test('a non-canonical spelling of the same expiry (leading zero, upper case)', async () => {
    const { signer } = signerAt();
    const [expiry, principal, mac] = (await signer.sign(JOB, 'alice')).split('.');
    await expect(signer.verify(`0${expiry}.${principal}.${mac}`, JOB)).resolves.toBeUndefined();
    await expect(signer.verify(`${expiry!.toUpperCase()}.${principal}.${mac}`, JOB)).resolves.toBeUndefined();
  });

  test('a tampered mac, in any position', async () => {
    const { signer } = signerAt();
    const token = await signer.sign(JOB, 'alice');
    const dot = token.lastIndexOf('.');
    for (const at of [dot + 1, dot + 20, token.length - 2]) {
      const c = token[at] === 'A' ? 'B' : 'A';
      const forged = token.slice(0, at) + c + token.slice(at + 1);
      await expect(signer.verify(forged, JOB)).resolves.toBeUndefined();
    }
  });

  test('a mac with a non-canonical last character (same bytes, other spelling)', async () => {
    const { signer } = signerAt();
    const token = await signer.sign(JOB, 'alice');
    // 43 characters carry 258 bits for a 256-bit mac: the last character's 2 low bits must be zero.
    const last = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.indexOf(token.at(-1)!);
    const sibling = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[last | 1]!;
    await expect(signer.verify(token.slice(0, -1) + sibling, JOB)).resolves.toBeUndefined();
  });

  test('a token signed with another secret', async () => {
    const token = await signerAt(T0, { secret: 'another-secret-of-32-characters!!!!!' }).signer.sign(
      JOB,
      'alice',
    );
    await expect(signerAt().signer.verify(token, JOB)).resolves.toBeUndefined();
  });

  test.each([
    ['empty', ''],
    ['no dots', 'abcdef'],
    ['two parts', 'lq2x.YWxpY2U'],
    ['four parts', 'lq2x.YWxpY2U.AAAA.AAAA'],
    ['empty expiry', '.YWxpY2U.' + 'A'.repeat(43)],
    ['negative expiry', '-1.YWxpY2U.' + 'A'.repeat(43)],
    ['expiry beyond safe integers', 'zzzzzzzzzzz.YWxpY2U.' + 'A'.repeat(43)],
    ['expiry too many digits', '0'.repeat(12) + '.YWxpY2U.' + 'A'.repeat(43)],
    ['empty principal', 'zzzzzzzz..' + 'A'.repeat(43)],
    ['padded principal', 'zzzzzzzz.YWxpY2U=.' + 'A'.repeat(43)],
    ['standard base64 alphabet', 'zzzzzzzz.YW+/Y2U.' + 'A'.repeat(43)],
    ['impossible base64 length', 'zzzzzzzz.YWxpY.' + 'A'.repeat(43)],
    ['principal not UTF-8', `zzzzzzzz.${Buffer.from([0xff, 0xfe]).toString('base64url')}.` + 'A'.repeat(43)],
    ['short mac', 'zzzzzzzz.YWxpY2U.' + 'A'.repeat(42)],
    ['long mac', 'zzzzzzzz.YWxpY2U.' + 'A'.repeat(44)],
    ['non-ASCII', 'zzzzzzzz.YWxpY2Ü.' + 'A'.repeat(43)],
    ['whitespace', 'zzzzzzzz.YWxp Y2U.' + 'A'.repeat(43)],
    ['over 1024 characters', 'zzzzzzzz.' + 'A'.repeat(MAX_STREAM_TOKEN_LENGTH) + '.' + 'A'.repeat(43)],
  ])('a malformed token: %s', async (_name, token) => {
    const { signer } = signerAt();
    await expect(signer.verify(token, JOB)).resolves.toBeUndefined();
  });

  test('a token and job id that are not strings, or a job id that is not valid (untyped callers)', async () => {
    const { signer } = signerAt();
    const token = await signer.sign(JOB, 'alice');
    await expect(signer.verify(undefined as unknown as string, JOB)).resolves.toBeUndefined();
    await expect(signer.verify({} as unknown as string, JOB)).resolves.toBeUndefined();
    await expect(signer.verify(token, undefined as unknown as string)).resolves.toBeUndefined();
    await expect(signer.verify(token, `${JOB}/..`)).resolves.toBeUndefined();
    await expect(signer.verify(token, JOB)).resolves.toBe('alice');
  });
});

describe('streamTokenSigner: argument errors', () => {
  test.each<[string, unknown]>([
    ['no options', undefined],
    ['secret missing', {}],
    ['secret of 31 characters', { secret: 'x'.repeat(31) }],
    ['secret of 31 bytes', { secret: new Uint8Array(31) }],
    ['secret of another type', { secret: 12345678901234567890123456789012 }],
    ['secret as an ArrayBuffer', { secret: new ArrayBuffer(64) }],
    ['ttlMs 0', { secret: SECRET, ttlMs: 0 }],
    ['ttlMs negative', { secret: SECRET, ttlMs: -1 }],
    ['ttlMs NaN', { secret: SECRET, ttlMs: NaN }],
    ['ttlMs Infinity', { secret: SECRET, ttlMs: Infinity }],
    ['ttlMs a string', { secret: SECRET, ttlMs: '1000' }],
    ['now not a function', { secret: SECRET, now: 5 }],
  ])('%s', (_name, options) => {
    expect(() => streamTokenSigner(options as StreamTokenOptions)).toThrow(InvalidArgumentError);
  });

  test('a secret of exactly 32 characters or bytes is enough; ttlMs is kept', () => {
    expect(streamTokenSigner({ secret: 'x'.repeat(32), ttlMs: 1500 }).ttlMs).toBe(1500);
    expect(streamTokenSigner({ secret: new Uint8Array(32) }).ttlMs).toBe(300_000);
  });

  test.each<[string, unknown, unknown]>([
    ['invalid job id', 'job 1', 'alice'],
    ['job id with a slash', 'job/1', 'alice'],
    ['empty principal', JOB, ''],
    ['principal not a string', JOB, 42],
    ['principal with a lone surrogate', JOB, 'a\uD800'],
    ['principal over the byte limit', JOB, 'é'.repeat(MAX_STREAM_TOKEN_PRINCIPAL_BYTES / 2 + 1)],
  ])('sign rejects: %s', async (_name, jobId, principal) => {
    const { signer } = signerAt();
    await expect(signer.sign(jobId as string, principal as string)).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
  });

  test('sign rejects when the clock does not answer epoch milliseconds', async () => {
    const { signer } = signerAt(NaN);
    await expect(signer.sign(JOB, 'alice')).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
