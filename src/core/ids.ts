/** Longest job id accepted anywhere (prefix + uuid is far shorter). */
export const MAX_JOB_ID_LENGTH = 200;

const ID_CHARS = /^[A-Za-z0-9._:-]+$/;

/**
 * Whether `id` can be a job id: 1-200 letters, digits, `.`, `_`, `:` or `-`. Anything else (spaces, `*`,
 * `{`, `}`, control characters) never reaches a store or a log.
 */
export function isValidJobId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_JOB_ID_LENGTH && ID_CHARS.test(id);
}

/** Random bytes drawn at once for ids: 256 ids' worth, one `getRandomValues` call. */
const POOL_BYTES = 16 * 256;
let pool: Uint8Array | undefined;
let poolAt = POOL_BYTES;

/** Character codes of each byte's two lowercase hex digits. */
const HIGH = new Uint8Array(256);
const LOW = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  const hex = i.toString(16).padStart(2, '0');
  HIGH[i] = hex.charCodeAt(0);
  LOW[i] = hex.charCodeAt(1);
}

/** Character codes of the variant digit (bits 10xx). */
const VARIANT = [0x38, 0x39, 0x61, 0x62];

/** Where each of a uuid's 16 bytes goes in its 36 characters (8-4-4-4-12). */
const AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/**
 * A maker of ids `prefix` + a random uuid v4, from Web Crypto's `getRandomValues` (any runtime). Each id
 * is built as one flat string: a prefix joined to a uuid afterwards is a two-part string that costs
 * again on every Map lookup until it is flattened, which copies it once more.
 */
export function idMaker(prefix: string): () => string {
  const codes = new Array<number>(prefix.length + 36).fill(45); // '-'
  for (let i = 0; i < prefix.length; i++) codes[i] = prefix.charCodeAt(i);
  const base = prefix.length;
  return () => {
    if (poolAt === POOL_BYTES) {
      pool ??= new Uint8Array(POOL_BYTES);
      globalThis.crypto.getRandomValues(pool);
      poolAt = 0;
    }
    const bytes = pool!;
    const from = poolAt;
    poolAt += 16;
    for (let i = 0; i < 16; i++) {
      const b = bytes[from + i]!;
      const at = base + AT[i]!;
      codes[at] = HIGH[b]!;
      codes[at + 1] = LOW[b]!;
    }
    codes[base + 14] = 0x34; // the version, 4
    codes[base + 19] = VARIANT[(bytes[from + 8]! >> 4) & 3]!; // the variant, 10xx: 8, 9, a or b
    return String.fromCharCode.apply(null, codes);
  };
}

/** A random uuid v4 (see idMaker). */
export const uuidV4 = idMaker('');
