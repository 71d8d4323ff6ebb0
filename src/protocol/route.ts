/**
 * The request path and query as the client sent them, for routing. Both handlers (Node and fetch) route by
 * the raw path: nothing is decoded or normalized, so `/v1/inference/%2e%2e/jobs` can never become another
 * route; such paths are refused instead. Imports no `node:` module.
 */
import { HttpError } from './status.js';

/** The error code of a request-target that is refused before routing (answered as `400`). */
export const INVALID_PATH = 'INVALID_PATH';

/** Longest request-target accepted, in characters (8 KiB, the common server default). */
export const MAX_REQUEST_TARGET_LENGTH = 8192;

const SLASH = 0x2f;
const DOT = 0x2e;
const BACKSLASH = 0x5c;

/**
 * The path of a raw request-target (Node's `req.url`, or a fetch `Request`'s URL), without query or fragment,
 * still percent-encoded and never normalized (`//` stays; a path with empty segments just matches no route).
 *
 * Accepts origin-form (`/v1/jobs?x=1`) and absolute-form (`http://host/v1/jobs`, routed by its path as
 * HTTP/1.1 requires; an empty path is `/`).
 *
 * @throws HttpError `400 INVALID_PATH` when the target is empty, longer than
 * `MAX_REQUEST_TARGET_LENGTH`, neither origin- nor absolute-form (`*`, `v1/jobs`, `ftp://…`), holds a
 * character outside printable ASCII or a backslash, or its path holds a `.` or `..` segment (plain or
 * percent-encoded in any case, also between encoded slashes `%2f`), a `%5c`, an encoded control character or
 * a malformed percent escape.
 *
 * @example
 * requestPath('/v1/inference/job-1/stream?after=3'); // '/v1/inference/job-1/stream'
 * requestPath('http://example.com/v1/jobs'); // '/v1/jobs'
 * requestPath('/v1/inference/%2E%2e/jobs'); // throws HttpError 400 INVALID_PATH
 */
export function requestPath(target: string): string {
  if (typeof target !== 'string' || target.length === 0) throw invalid('the request-target is empty');
  if (target.length > MAX_REQUEST_TARGET_LENGTH)
    throw invalid(`the request-target is longer than ${MAX_REQUEST_TARGET_LENGTH} characters`);
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f)
      throw invalid(
        'the request-target holds a space, a control or a non-ASCII character; percent-encode it',
      );
    if (c === BACKSLASH) throw invalid("the request-target holds a backslash; use '/' between segments");
  }
  const start = pathStart(target);
  let end = start;
  while (end < target.length) {
    const c = target.charCodeAt(end);
    if (c === 0x3f /* ? */ || c === 0x23 /* # */) break;
    end++;
  }
  if (start === end) return '/'; // absolute-form with an empty path, e.g. `http://host?x`
  const path = target.slice(start, end);
  checkSegments(path);
  return path;
}

/**
 * The query of a raw request-target as WHATWG `URLSearchParams` (`?after=3&token=…`); empty when there is
 * none. Validate the target with {@link requestPath} first: this only splits it.
 *
 * @example
 * requestQuery('/v1/inference/job-1/stream?after=3').get('after'); // '3'
 */
export function requestQuery(target: string): URLSearchParams {
  const q = target.indexOf('?');
  if (q < 0) return new URLSearchParams();
  const hash = target.indexOf('#');
  if (hash >= 0 && hash < q) return new URLSearchParams();
  return new URLSearchParams(hash < 0 ? target.slice(q + 1) : target.slice(q + 1, hash));
}

/** Index where the path begins: 0 in origin-form, after the authority in absolute-form. */
function pathStart(target: string): number {
  if (target.charCodeAt(0) === SLASH) return 0;
  const scheme = target.slice(0, 8).toLowerCase();
  const authority = scheme.startsWith('http://') ? 7 : scheme.startsWith('https://') ? 8 : -1;
  if (authority < 0)
    throw invalid("the request-target must start with '/' (origin-form) or 'http(s)://host' (absolute-form)");
  let i = authority;
  while (i < target.length) {
    const c = target.charCodeAt(i);
    if (c === SLASH || c === 0x3f || c === 0x23) break;
    i++;
  }
  if (i === authority) throw invalid('the absolute-form request-target has no host');
  return i;
}

/**
 * Refuses dot segments, encoded backslashes, encoded control characters and malformed escapes in one pass.
 * A segment ends at `/` or at an encoded `%2f`, so a decoded id can never carry `../` either.
 */
function checkSegments(path: string): void {
  let dots = 0;
  let other = false;
  for (let i = 0; i <= path.length; i++) {
    let c = i === path.length ? SLASH : path.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const hi = hexValue(path.charCodeAt(i + 1));
      const lo = hexValue(path.charCodeAt(i + 2));
      if (hi < 0 || lo < 0)
        throw invalid("the path holds a '%' not followed by two hex digits; encode it as %25");
      c = hi * 16 + lo;
      i += 2;
      if (c === BACKSLASH)
        throw invalid("the path holds an encoded backslash (%5c); use '/' between segments");
      if (c < 0x20 || c === 0x7f) throw invalid('the path holds an encoded control character');
    }
    if (c === SLASH) {
      if (!other && (dots === 1 || dots === 2))
        throw invalid(
          "the path holds a '.' or '..' segment (plain or percent-encoded); send the route's path as is",
        );
      dots = 0;
      other = false;
    } else if (c === DOT) dots++;
    else other = true;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

function invalid(reason: string): HttpError {
  return new HttpError(400, INVALID_PATH, `job-registry: ${reason}`);
}
