/**
 * API keys for the example server: each key is its own principal, named by a stable id derived from the
 * key (`key-` + the first 8 hex digits of its SHA-256), so logs, job owners and stream tokens never carry
 * the key itself.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Principal } from '../src/http/index.js';

/** Keys shorter than this get a warning at startup. */
export const MIN_KEY_LENGTH = 16;

/** The principal id of an API key: `key-` + the first 8 hex digits of its SHA-256. Not secret. */
export function principalIdOf(key: string): string {
  return `key-${sha256(key).slice(0, 8)}`;
}

/** A set of API keys, checked by `authenticate`. */
export interface ApiKeys {
  /** The principal ids, one per distinct key. */
  readonly principals: readonly string[];
  /** Keys shorter than {@link MIN_KEY_LENGTH}, by principal id (the key itself is never shown). */
  readonly weak: readonly string[];
  /** The principal of a request's `Authorization: Bearer <key>`, or `undefined`. */
  authenticate(req: IncomingMessage): Principal | undefined;
}

const BEARER = /^Bearer[ \t]+([\x21-\x7e]+)[ \t]*$/i;

/**
 * Builds the check for a list of keys. A request's key is hashed and looked up by its digest, so the time
 * taken says nothing about how much of a key matched.
 *
 * @throws Error when two different keys map to the same principal id (pick another key).
 */
export function apiKeys(keys: readonly string[]): ApiKeys {
  const byDigest = new Map<string, Principal>();
  const weak: string[] = [];
  for (const [i, key] of keys.entries()) {
    if (!/^[\x21-\x7e]+$/.test(key))
      throw new Error(
        `API key #${i + 1} is empty or holds a space or a non-ASCII character; it could not travel in an Authorization header`,
      );
    const digest = sha256(key);
    if (byDigest.has(digest)) continue;
    const id = principalIdOf(key);
    if ([...byDigest.values()].some((p) => p.id === id))
      throw new Error(`two API keys share the principal id ${id}; replace one of them`);
    byDigest.set(digest, { id });
    if (key.length < MIN_KEY_LENGTH) weak.push(id);
  }
  return {
    principals: [...byDigest.values()].map((p) => p.id),
    weak,
    authenticate(req) {
      const header = req.headers.authorization;
      if (typeof header !== 'string' || header.length > 1024) return undefined;
      const m = BEARER.exec(header);
      const principal = m === null ? undefined : byDigest.get(sha256(m[1]!));
      return principal === undefined ? undefined : { id: principal.id };
    },
  };
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
