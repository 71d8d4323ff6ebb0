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

/** The CORS headers of an answer to a request from `origin`, and whether that origin is allowed. */
export function corsHeaders(
  cors: CorsOptions | undefined,
  origin: string | undefined,
  exposeHeaders?: string,
): { headers: Record<string, string>; allowed: boolean } {
  if (cors === undefined) return { headers: {}, allowed: false };
  const allowed = allowedOrigin(cors, origin);
  if (allowed === undefined) return { headers: { Vary: 'Origin' }, allowed: false };
  const headers: Record<string, string> = {
    Vary: 'Origin',
    'Access-Control-Allow-Origin': allowed,
    'Access-Control-Expose-Headers':
      exposeHeaders === undefined ? 'Location, Retry-After' : `Location, Retry-After, ${exposeHeaders}`,
  };
  if (cors.credentials === true) headers['Access-Control-Allow-Credentials'] = 'true';
  return { headers, allowed: true };
}

/** The headers of a preflight answer: the methods and headers only for an allowed origin. */
export function preflightHeaders(
  cors: CorsOptions,
  allowed: boolean,
  methods: readonly string[],
  allowHeaders?: string,
): Record<string, string> {
  if (!allowed) return {};
  return {
    'Access-Control-Allow-Methods': methods.join(', '),
    'Access-Control-Allow-Headers':
      allowHeaders === undefined ? ALLOWED_HEADERS : `${ALLOWED_HEADERS}, ${allowHeaders}`,
    'Access-Control-Max-Age': String(cors.maxAgeSeconds ?? 600),
  };
}
