import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { HttpError } from '../../src/protocol/status.js';
import {
  INVALID_PATH,
  MAX_REQUEST_TARGET_LENGTH,
  requestPath,
  requestQuery,
} from '../../src/protocol/route.js';

function refusal(target: string): HttpError | undefined {
  try {
    requestPath(target);
    return undefined;
  } catch (e) {
    if (e instanceof HttpError) return e;
    throw e;
  }
}

describe('requestPath: accepted targets', () => {
  test.each([
    ['origin-form', '/v1/jobs', '/v1/jobs'],
    ['root', '/', '/'],
    ['query dropped', '/v1/inference/job-1/stream?after=3&token=a.b.c', '/v1/inference/job-1/stream'],
    ['fragment dropped', '/v1/jobs#frag', '/v1/jobs'],
    ['dots in the query are not path', '/v1/jobs?x=../..&y=%2e%2e', '/v1/jobs'],
    ['trailing slash kept', '/v1/jobs/', '/v1/jobs/'],
    ['empty segments not collapsed', '/v1//jobs', '/v1//jobs'],
    ['leading // kept as a path', '//evil/v1/jobs', '//evil/v1/jobs'],
    ['percent-encoding kept as sent', '/v1/inference/job%2D1', '/v1/inference/job%2D1'],
    ['encoded slash inside an id kept', '/v1/inference/a%2fb/stream', '/v1/inference/a%2fb/stream'],
    ['three dots is a name, not a dot segment', '/v1/inference/.../stream', '/v1/inference/.../stream'],
    ['dots inside a name', '/v1/inference/job..1/stream', '/v1/inference/job..1/stream'],
    ['leading dot name', '/v1/inference/.job', '/v1/inference/.job'],
    ['double-encoded dots stay text', '/v1/inference/%252e%252e/jobs', '/v1/inference/%252e%252e/jobs'],
    ['absolute-form http', 'http://evil/v1/jobs', '/v1/jobs'],
    ['absolute-form https with port and query', 'https://h:8080/a/b?q', '/a/b'],
    ['absolute-form scheme in any case', 'HTTP://Host/v1/jobs', '/v1/jobs'],
    ['absolute-form with userinfo', 'http://user:pw@host/v1/jobs', '/v1/jobs'],
    ['absolute-form with an empty path', 'http://host', '/'],
    ['absolute-form with an empty path and a query', 'http://host?after=1', '/'],
    ['absolute-form keeps empty segments', 'http://host//v1/jobs', '//v1/jobs'],
  ])('%s: %s -> %s', (_name, target, path) => {
    expect(requestPath(target)).toBe(path);
  });

  test('a target of exactly the maximum length is accepted', () => {
    const target = '/' + 'a'.repeat(MAX_REQUEST_TARGET_LENGTH - 1);
    expect(requestPath(target)).toBe(target);
  });
});

describe('requestPath: refused targets answer 400 INVALID_PATH', () => {
  test.each([
    ['empty', ''],
    ['asterisk-form', '*'],
    ['relative', 'v1/jobs'],
    ['authority-form', 'example.com:443'],
    ['other scheme', 'ftp://host/v1/jobs'],
    ['scheme without //', 'http:/v1/jobs'],
    ['absolute-form without a host', 'http:///v1/jobs'],
    ['plain ..', '/v1/inference/../jobs'],
    ['plain .', '/v1/./jobs'],
    ['.. at the end', '/v1/inference/..'],
    ['. at the end', '/v1/inference/.'],
    ['.. first', '/../v1/jobs'],
    ['%2e%2e', '/v1/inference/%2e%2e/jobs'],
    ['%2E%2E', '/v1/inference/%2E%2E/jobs'],
    ['%2E.', '/v1/inference/%2E./jobs'],
    ['.%2e', '/v1/inference/.%2e/jobs'],
    ['%2e alone', '/v1/%2e/jobs'],
    ['.. before a query', '/v1/inference/..?x=1'],
    ['.. before a fragment', '/v1/inference/..#x'],
    ['.. between encoded slashes', '/v1/inference/a%2f..%2fjobs/stream'],
    ['%2e%2e before an encoded slash', '/v1/inference/%2e%2e%2Fjobs'],
    ['.. after an encoded slash', '/v1/inference/x%2F%2e%2e'],
    ['.. in absolute-form', 'http://host/v1/inference/../jobs'],
    ['%2e%2e in absolute-form', 'https://host/v1/%2e%2e/jobs'],
    ['backslash', '/v1/inference\\..\\jobs'],
    ['backslash alone', '/v1\\jobs'],
    ['backslash in the query', '/v1/jobs?x=\\'],
    ['backslash in the authority', 'http://evil\\@host/v1/jobs'],
    ['%5c', '/v1/inference/%5c/jobs'],
    ['%5C', '/v1/inference/a%5Cb'],
    ['space', '/v1/jobs x'],
    ['tab', '/v1/\tjobs'],
    ['NUL', '/v1/jobs\0'],
    ['CR LF', '/v1/jobs\r\nX-Evil: 1'],
    ['DEL', '/v1/jobs\x7f'],
    ['non-ASCII', '/v1/inference/jöb'],
    ['non-ASCII in the query', '/v1/jobs?x=é'],
    ['encoded NUL', '/v1/inference/job%00/stream'],
    ['encoded LF', '/v1/inference/job%0a'],
    ['encoded DEL', '/v1/inference/job%7F'],
    ['lone %', '/v1/inference/50%'],
    ['% with one hex digit', '/v1/inference/%2'],
    ['% with non-hex digits', '/v1/inference/%zz/stream'],
    ['too long', '/' + 'a'.repeat(MAX_REQUEST_TARGET_LENGTH)],
  ])('%s', (_name, target) => {
    const e = refusal(target);
    expect(e).toBeInstanceOf(HttpError);
    expect(e).toMatchObject({ status: 400, code: INVALID_PATH });
    expect(e!.message).toMatch(/^job-registry: /);
  });

  test('INVALID_PATH is the code string itself', () => {
    expect(INVALID_PATH).toBe('INVALID_PATH');
  });

  test('a non-string target (untyped caller) is refused, not crashed on', () => {
    expect(refusal(undefined as unknown as string)).toMatchObject({ status: 400, code: INVALID_PATH });
  });
});

describe('requestPath: properties', () => {
  // What a router that decodes each segment once would see.
  const decodedSegments = (path: string): string[] =>
    path.split('/').flatMap((s) => decodeURIComponent(s).split(/[/\\]/));

  test('no accepted path decodes to a . or .. segment, or a backslash', () => {
    const piece = fc.constantFrom(
      '/',
      '.',
      '..',
      '%2e',
      '%2E',
      '%2f',
      '%2F',
      '%5c',
      '\\',
      'a',
      'job-1',
      '%41',
      '?',
      '#',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
        const target = '/' + pieces.join('');
        let path: string;
        try {
          path = requestPath(target);
        } catch (e) {
          expect(e).toMatchObject({ status: 400, code: INVALID_PATH });
          return;
        }
        expect(target.startsWith(path)).toBe(true);
        for (const seg of decodedSegments(path)) expect(['.', '..']).not.toContain(seg);
      }),
      { numRuns: 2000 },
    );
  });

  test('origin-form paths of safe characters come back unchanged, as WHATWG URL sees them', () => {
    const segment = fc.stringMatching(/^[A-Za-z0-9_:-]{1,10}$/);
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 6 }), fc.string(), (segments, query) => {
        const path = '/' + segments.join('/');
        const target = `${path}?${encodeURIComponent(query)}`;
        expect(requestPath(target)).toBe(path);
        expect(new URL(target, 'http://x').pathname).toBe(path);
      }),
    );
  });

  test('worst-case 8 KiB targets are answered in linear time', () => {
    const worst = [
      '/' + '.'.repeat(MAX_REQUEST_TARGET_LENGTH - 1),
      '/' + '%2e'.repeat(2730),
      '/' + 'a/'.repeat(4095),
      'http://' + 'h'.repeat(MAX_REQUEST_TARGET_LENGTH - 7),
    ];
    const started = performance.now();
    for (let i = 0; i < 100; i++) for (const target of worst) expect(() => requestPath(target)).not.toThrow();
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('requestQuery', () => {
  test.each([
    [
      'after and token',
      '/v1/inference/job-1/stream?after=3&token=k.abc_-.x',
      { after: '3', token: 'k.abc_-.x' },
    ],
    ['no query', '/v1/jobs', {}],
    ['empty query', '/v1/jobs?', {}],
    ['fragment dropped', '/v1/jobs?after=2#after=9', { after: '2' }],
    ['? after # is fragment', '/v1/jobs#x?after=1', {}],
    ['percent-decoded', '/v1/jobs?token=a%2Eb', { token: 'a.b' }],
    ['absolute-form', 'https://h:8080/a/b?after=5', { after: '5' }],
    ['absolute-form without a path', 'http://host?after=7', { after: '7' }],
    ['first value wins with get', '/v1/jobs?after=1&after=2', { after: '1' }],
  ])('%s', (_name, target, expected) => {
    const query = requestQuery(target);
    expect(query).toBeInstanceOf(URLSearchParams);
    expect(Object.fromEntries([...new Set(query.keys())].map((k) => [k, query.get(k)]))).toEqual(expected);
  });

  test('a ? inside the query belongs to the value', () => {
    expect(requestQuery('/v1/jobs?token=a?b').get('token')).toBe('a?b');
  });
});

test('route.ts and stream-token.ts import no node: module (shared with the fetch handler)', () => {
  for (const file of ['src/protocol/route.ts', 'src/protocol/stream-token.ts']) {
    const text = readFileSync(file, 'utf8');
    const specs = [...text.matchAll(/^import[^;]*?from\s+'([^']+)'/gms)].map((m) => m[1]);
    expect(specs.length).toBeGreaterThan(0);
    expect(specs.filter((s) => !s!.startsWith('./') && !s!.startsWith('../'))).toEqual([]);
  }
});
