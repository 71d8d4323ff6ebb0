import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CorsOptions } from './options.js';

/** Headers a cross-origin request may send. */
export const ALLOWED_HEADERS = 'Authorization, Content-Type, Last-Event-ID';

/** The origin to answer with, or `undefined` when the request's origin is not allowed. */
export function allowedOrigin(cors: CorsOptions, origin: string | undefined): string | undefined {
  if (origin === undefined) return undefined;
  const list = typeof cors.origin === 'string' ? [cors.origin] : cors.origin;
  if (list.includes(origin)) return origin;
  // `*` is any real origin; the opaque origin `null` must be listed by name.
  if (list.includes('*') && origin !== 'null') return '*';
  return undefined;
}

/** Sets the CORS headers of an answer; returns whether the origin is allowed. */
export function setCors(cors: CorsOptions | undefined, req: IncomingMessage, res: ServerResponse): boolean {
  if (cors === undefined) return false;
  const origin = req.headers.origin;
  const allowed = allowedOrigin(cors, origin);
  res.setHeader('Vary', 'Origin');
  if (allowed === undefined) return false;
  res.setHeader('Access-Control-Allow-Origin', allowed);
  if (cors.credentials === true) res.setHeader('Access-Control-Allow-Credentials', 'true');
  res.setHeader('Access-Control-Expose-Headers', 'Location, Retry-After');
  return true;
}

/** Answers a preflight: the methods and headers only for an allowed origin, nothing for another. */
export function preflight(
  cors: CorsOptions,
  allowed: boolean,
  methods: readonly string[],
  res: ServerResponse,
): void {
  if (allowed)
    res.writeHead(204, {
      'Access-Control-Allow-Methods': methods.join(', '),
      'Access-Control-Allow-Headers': ALLOWED_HEADERS,
      'Access-Control-Max-Age': String(cors.maxAgeSeconds ?? 600),
    });
  else res.writeHead(204);
  res.end();
}
