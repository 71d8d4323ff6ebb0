/**
 * Short-lived signed stream tokens for `sse_url`: a browser `EventSource` cannot send an `Authorization`
 * header, so the URL itself carries proof that one principal may stream one job until an expiry.
 * HMAC-SHA256 through Web Crypto (`globalThis.crypto.subtle`); imports no `node:` module.
 */
import { positiveMillis, type DurationInput } from '../core/duration.js';
import { InvalidArgumentError } from '../core/errors.js';
import { isValidJobId } from '../core/ids.js';

/** Longest token {@link StreamTokenSigner.verify} looks at; longer strings are refused unread. */
export const MAX_STREAM_TOKEN_LENGTH = 1024;

/** Longest principal id a token can carry, in UTF-8 bytes (keeps every token under the length cap). */
export const MAX_STREAM_TOKEN_PRINCIPAL_BYTES = 512;

/** Shortest secret accepted: 32 bytes (a `Uint8Array`) or 32 characters (a string). */
export const MIN_STREAM_TOKEN_SECRET_LENGTH = 32;

/** Options of {@link streamTokenSigner}. */
export interface StreamTokenOptions {
  /**
   * The HMAC key: at least 32 bytes, or a string of at least 32 characters (used as its UTF-8 bytes).
   * Every process that verifies tokens another one signed needs the same secret.
   */
  secret: string | Uint8Array;
  /**
   * How long a token stays valid after it is signed.
   * @defaultValue 5 minutes
   */
  ttlMs?: DurationInput;
  /**
   * The clock, in milliseconds since the epoch (tests inject one).
   * @defaultValue `Date.now`
   */
  now?: () => number;
}

/** Signs and checks stream tokens; see {@link streamTokenSigner}. */
export interface StreamTokenSigner {
  /** How long a token stays valid after it is signed, in milliseconds. */
  readonly ttlMs: number;
  /**
   * A token that lets `principalId` stream `jobId` for {@link ttlMs}. URL-safe as is (`[0-9a-zA-Z._-]`).
   * The principal id is readable in the token (signed, not encrypted).
   * @throws {@link job-registry!InvalidArgumentError} (as a rejection) when `jobId` is not a valid job id, or
   * `principalId` is empty, not well-formed Unicode, or longer than `MAX_STREAM_TOKEN_PRINCIPAL_BYTES`.
   */
  sign(jobId: string, principalId: string): Promise<string>;
  /**
   * The principal id carried by `token` when it is well formed, unexpired, signed for `jobId` and its MAC
   * checks (in constant time); `undefined` for anything else. Never rejects for bad input.
   */
  verify(token: string, jobId: string): Promise<string | undefined>;
}

const DEFAULT_TTL_MS = 5 * 60_000;
const MAC_BYTES = 32;
const EXPIRY = /^[0-9a-z]{1,11}$/;

/**
 * A signer of stream tokens `<expiry base36>.<base64url(principal id)>.<base64url(HMAC-SHA256)>`, the MAC
 * taken over `jobId + '\n' + principalId + '\n' + expiry` (the expiry as written in the token). The key is
 * imported once, on first use.
 *
 * @throws {@link job-registry!InvalidArgumentError} when `secret` is shorter than 32 bytes / characters or not a string or
 * `Uint8Array`, `ttlMs` is not a finite number above 0, or `now` is not a function.
 *
 * @example
 * const tokens = streamTokenSigner({ secret: process.env.STREAM_TOKEN_SECRET! });
 * const sseUrl = `/v1/inference/${id}/stream?token=${await tokens.sign(id, principal.id)}`;
 * const who = await tokens.verify(query.get('token') ?? '', id); // principal id, or undefined
 */
export function streamTokenSigner(options: StreamTokenOptions): StreamTokenSigner {
  if (typeof options !== 'object' || options === null)
    throw new InvalidArgumentError('streamTokenSigner needs an options object with a secret');
  const secret = secretBytes(options.secret);
  const ttlMs = positiveMillis(options.ttlMs ?? DEFAULT_TTL_MS, 'ttlMs');
  const now = options.now ?? Date.now;
  if (typeof now !== 'function')
    throw new InvalidArgumentError('now must be a function returning epoch milliseconds');

  let key: Promise<CryptoKey> | undefined;
  const hmacKey = (): Promise<CryptoKey> => {
    key ??= globalThis.crypto.subtle
      .importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify'])
      .catch((e: unknown) => {
        key = undefined; // a later call tries again rather than failing forever
        throw e;
      });
    return key;
  };

  return {
    ttlMs,
    async sign(jobId, principalId) {
      if (!isValidJobId(jobId)) throw new InvalidArgumentError('a stream token needs a valid job id');
      const principal = principalBytes(principalId);
      const at = now();
      const expiry = Math.floor(at + ttlMs);
      if (!Number.isSafeInteger(expiry) || expiry < 0)
        throw new InvalidArgumentError(`now() must return epoch milliseconds, got ${String(at)}`);
      const expiryField = expiry.toString(36);
      const mac = await globalThis.crypto.subtle.sign(
        'HMAC',
        await hmacKey(),
        message(jobId, principalId, expiryField),
      );
      return `${expiryField}.${toBase64Url(principal)}.${toBase64Url(new Uint8Array(mac))}`;
    },
    async verify(token, jobId) {
      if (typeof token !== 'string' || token.length > MAX_STREAM_TOKEN_LENGTH || !isValidJobId(jobId))
        return undefined;
      const parts = token.split('.');
      if (parts.length !== 3) return undefined;
      const [expiryField, principalField, macField] = parts as [string, string, string];
      if (!EXPIRY.test(expiryField)) return undefined;
      const expiry = parseInt(expiryField, 36);
      // Written so that a clock answering NaN counts as expired.
      if (!Number.isSafeInteger(expiry) || !(now() < expiry)) return undefined;
      const principal = decodeUtf8(fromBase64Url(principalField));
      const mac = fromBase64Url(macField);
      if (principal === undefined || principal.length === 0 || mac?.length !== MAC_BYTES) return undefined;
      const ok = await globalThis.crypto.subtle.verify(
        'HMAC',
        await hmacKey(),
        mac,
        message(jobId, principal, expiryField),
      );
      return ok ? principal : undefined;
    },
  };
}

function secretBytes(secret: unknown): Uint8Array<ArrayBuffer> {
  if (typeof secret === 'string') {
    if (secret.length < MIN_STREAM_TOKEN_SECRET_LENGTH)
      throw new InvalidArgumentError(
        `secret must be at least ${MIN_STREAM_TOKEN_SECRET_LENGTH} characters, got ${secret.length}; ` +
          'use a long random string, e.g. 32 random bytes in base64',
      );
    return new TextEncoder().encode(secret);
  }
  if (secret instanceof Uint8Array) {
    if (secret.length < MIN_STREAM_TOKEN_SECRET_LENGTH)
      throw new InvalidArgumentError(
        `secret must be at least ${MIN_STREAM_TOKEN_SECRET_LENGTH} bytes, got ${secret.length}`,
      );
    return new Uint8Array(secret); // a copy: later changes to the caller's buffer do not change the key
  }
  throw new InvalidArgumentError(
    'secret must be a string of at least 32 characters or a Uint8Array of at least 32 bytes',
  );
}

function principalBytes(principalId: unknown): Uint8Array {
  if (typeof principalId !== 'string' || principalId.length === 0)
    throw new InvalidArgumentError('a stream token needs a non-empty principal id');
  const bytes = new TextEncoder().encode(principalId);
  // A lone surrogate would be encoded as U+FFFD and verify as another principal's id.
  if (decodeUtf8(bytes) !== principalId)
    throw new InvalidArgumentError(
      'a principal id in a stream token must be well-formed Unicode (no lone surrogates)',
    );
  if (bytes.length > MAX_STREAM_TOKEN_PRINCIPAL_BYTES)
    throw new InvalidArgumentError(
      `a principal id in a stream token may be at most ${MAX_STREAM_TOKEN_PRINCIPAL_BYTES} bytes of UTF-8, got ${bytes.length}`,
    );
  return bytes;
}

function message(jobId: string, principalId: string, expiryField: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`${jobId}\n${principalId}\n${expiryField}`);
}

function decodeUtf8(bytes: Uint8Array | undefined): string | undefined {
  if (bytes === undefined) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined; // not UTF-8: a token this library did not write
  }
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const INDEX = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) INDEX[ALPHABET.charCodeAt(i)] = i;

/** base64url without padding. */
function toBase64Url(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + ALPHABET[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]!;
  }
  return out;
}

/**
 * Bytes of unpadded base64url, or `undefined` for anything {@link toBase64Url} would not have written
 * (other characters, an impossible length, non-zero trailing bits), so each token has exactly one spelling.
 */
function fromBase64Url(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (text.length % 4 === 1) return undefined;
  const out = new Uint8Array((text.length * 3) >> 2);
  let value = 0;
  let bits = 0;
  let j = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? INDEX[c]! : -1;
    if (v < 0) return undefined;
    value = (value << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (value >> bits) & 255;
      value &= (1 << bits) - 1;
    }
  }
  return value === 0 ? out : undefined;
}
