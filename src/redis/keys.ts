/**
 * Key layout. Every key of one job shares the hash tag `{<jobId>}`, so a job's keys live in one Redis
 * Cluster slot and its Lua script touches one slot only:
 *
 *   <prefix>{<id>}:meta     hash: state, error, created_at, updated_at, token_count, owner
 *   <prefix>{<id>}:tokens   stream: one entry per token, id `0-<seq+1>`, field `s` = a string token or
 *                           `t` = any other token as JSON; then one end
 *                           entry (auto id) with fields `end` = terminal state, `error`
 *   <prefix>jobs            sorted set: job ids by creation time (for listJobs)
 *   <prefix>events          stream: registry events of every process (type, job, from, to, error, at, origin)
 *   <prefix>owner:<owner>   string with a TTL: the lease of a live process
 */
export interface Keys {
  meta(id: string): string;
  tokens(id: string): string;
  owner(owner: string): string;
  readonly jobs: string;
  readonly events: string;
}

const PREFIX = /^[A-Za-z0-9:._-]{0,100}$/;

/** Whether a key prefix is safe: no pattern or hash-tag characters. */
export function isValidPrefix(prefix: string): boolean {
  return typeof prefix === 'string' && PREFIX.test(prefix);
}

export function keysFor(prefix: string): Keys {
  return {
    meta: (id) => `${prefix}{${id}}:meta`,
    tokens: (id) => `${prefix}{${id}}:tokens`,
    owner: (owner) => `${prefix}owner:${owner}`,
    jobs: `${prefix}jobs`,
    events: `${prefix}events`,
  };
}

/** Stream id of the token with this seq. */
export function tokenId(seq: number): string {
  return `0-${seq + 1}`;
}

/** Seq of a token stream id, or `undefined` for an id that is not a token's (the end entry). */
export function seqOf(id: string): number | undefined {
  if (!id.startsWith('0-')) return undefined;
  const n = Number(id.slice(2));
  return Number.isSafeInteger(n) && n > 0 ? n - 1 : undefined;
}

/** Compares two stream ids (`ms-seq`, decimal without leading zeros) without parsing numbers. */
export function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  const ia = a.indexOf('-');
  const ib = b.indexOf('-');
  if (ia !== ib) return ia - ib;
  for (let i = 0; i < ia; i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d;
  }
  const la = a.length - ia;
  const lb = b.length - ib;
  if (la !== lb) return la - lb;
  return a < b ? -1 : a > b ? 1 : 0;
}
