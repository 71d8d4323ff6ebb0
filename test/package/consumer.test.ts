/**
 * The package as a user gets it. `npm pack` makes the tarball; it is unpacked into a scratch project under
 * os.tmpdir() whose node_modules holds exactly the tarball's dependencies and peer dependencies (linked from
 * this repo's node_modules, so no registry is asked), plus `@types/node` as a consumer's own. Consumers of
 * every entry point are typechecked there with this repo's tsc, under `node16` and `bundler`, with
 * `skipLibCheck` off; plain Node then imports and requires every entry point.
 */
import { execFile, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';

const ROOT = resolve('.');
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
// Children run without jest's --experimental-vm-modules.
const env = { ...process.env, NODE_OPTIONS: '' };
const run = promisify(execFile);

interface PackedFile {
  path: string;
}
interface Manifest {
  exports: Record<string, unknown>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

let tmp: string;
let app: string;
let packed: string[];
let manifest: Manifest;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'jr-consumer-'));
  app = join(tmp, 'app');
  // --ignore-scripts: `prepack` would clean and rebuild the dist/ that other test files import while they
  // run; `npm test` has just built it (pretest).
  const pack = spawnSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], {
    cwd: ROOT,
    encoding: 'utf8',
    env,
  });
  if (pack.status !== 0) throw new Error(`npm pack failed:\n${pack.stderr}`);
  const [info] = JSON.parse(pack.stdout) as { filename: string; files: PackedFile[] }[];
  packed = info!.files.map((f) => f.path).sort();

  const home = join(app, 'node_modules/job-registry');
  mkdirSync(home, { recursive: true });
  const untar = spawnSync('tar', ['-xzf', join(tmp, info!.filename), '-C', home, '--strip-components=1']);
  if (untar.status !== 0) throw new Error(`tar failed:\n${untar.stderr}`);
  manifest = JSON.parse(readFileSync(join(home, 'package.json'), 'utf8')) as Manifest;

  // What npm would install beside the package: its dependencies and its peers (npm installs required peers
  // by itself; the optional ioredis is one the consumer of job-registry/redis installs). Nothing from
  // devDependencies, so a type the public surface needs from one of those fails here as it would for a user.
  const optional = (name: string): boolean => manifest.peerDependenciesMeta?.[name]?.optional === true;
  const wanted = [
    ...Object.keys(manifest.dependencies ?? {}),
    ...Object.keys(manifest.peerDependencies ?? {}),
    '@types/node',
  ];
  for (const name of wanted) {
    const from = join(ROOT, 'node_modules', name);
    if (!existsSync(from)) {
      if (optional(name)) continue;
      throw new Error(`${name} is not in this repo's node_modules; run npm install`);
    }
    const to = join(app, 'node_modules', name);
    mkdirSync(dirname(to), { recursive: true });
    if (!existsSync(to)) symlinkSync(from, to, 'dir');
  }
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
  );
}, 300_000);

afterAll(() => {
  if (tmp !== undefined && process.env.KEEP_CONSUMER === undefined)
    rmSync(tmp, { recursive: true, force: true });
});

test('npm pack ships the built files, package.json, README, LICENSE and CHANGELOG, nothing else', () => {
  const outside = packed.filter((p) => !p.startsWith('dist/'));
  expect(outside).toEqual(['CHANGELOG.md', 'LICENSE', 'README.md', 'package.json']);
  const dist = packed.filter((p) => p.startsWith('dist/'));
  expect(dist.filter((p) => !/\.(js|d\.ts|js\.map)$/.test(p))).toEqual([]);
  // A file no source builds is left over from an older build (npm publish runs prepack, which cleans).
  const stale = dist.filter(
    (p) => p.endsWith('.js') && !existsSync(join(ROOT, 'src', p.slice(5, -3) + '.ts')),
  );
  expect(stale).toEqual([]);
  for (const js of dist.filter((p) => p.endsWith('.js'))) {
    expect([js, js.slice(0, -3) + '.d.ts', js + '.map'].filter((p) => !packed.includes(p))).toEqual([]);
  }
});

test('each .js names a shipped source map that carries its sources; no .d.ts names a map', () => {
  const home = join(app, 'node_modules/job-registry');
  for (const file of packed.filter((p) => /\.(js|d\.ts)$/.test(p))) {
    const text = readFileSync(join(home, file), 'utf8');
    const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(text)?.[1];
    if (file.endsWith('.d.ts')) {
      // src/ is not shipped, so a declaration map could only point at a missing .ts file.
      expect({ file, url }).toEqual({ file, url: undefined });
      continue;
    }
    expect({ file, map: packed.includes(join(dirname(file), url ?? '')) }).toEqual({ file, map: true });
    const map = JSON.parse(readFileSync(join(home, dirname(file), url!), 'utf8')) as {
      sources: string[];
      sourcesContent?: (string | null)[];
    };
    expect(map.sources.length).toBeGreaterThan(0);
    expect(map.sourcesContent?.length).toBe(map.sources.length);
    expect(map.sourcesContent!.every((s) => typeof s === 'string' && s.length > 0)).toBe(true);
  }
});

const CONSUMER = `
import { JobRegistry, JobNotFoundError, type JobSnapshot, type RegistryEvent, type TokenEvent } from 'job-registry';
import { createJobHandler } from 'job-registry/http';
import { streamJob, submitJob, type SubmittedJob } from 'job-registry/client';
import { redisBackend } from 'job-registry/redis';
import { createFetchHandler } from 'job-registry/fetch';
import { registryMetrics } from 'job-registry/metrics';
import { createDurableStreamsHandler } from 'job-registry/durable-streams';
import type { DateTime } from 'luxon';
import type { Observable } from 'rxjs';

type IsAny<T> = 0 extends 1 & T ? true : false;

const registry = new JobRegistry<string, { prompt: string }>({ retention: { minutes: 5 } });
const id: string = registry.createJob({ payload: { prompt: 'hi' } });
const snap: JobSnapshot | undefined = registry.getJob(id);
if (snap !== undefined) {
  const created: DateTime = snap.createdAt;
  const iso: string | null = created.toISO();
  const notAny: IsAny<JobSnapshot['createdAt']> = false;
  // @ts-expect-error createdAt is a luxon DateTime: this compiles only if DateTime degraded to any
  const n: number = snap.createdAt;
  // @ts-expect-error no such method on a luxon DateTime
  snap.createdAt.thisMethodDoesNotExist();
  void [iso, notAny, n];
}
const events: Observable<RegistryEvent> = registry.events$;
const tokens: Observable<TokenEvent<string>> = registry.tokens$(id);
const code: string = new JobNotFoundError('job-x').code;

const nodeHandler = createJobHandler(registry);
const fetchHandler: (request: Request) => Promise<Response> = createFetchHandler(registry);

const submitted: Promise<SubmittedJob> = submitJob('http://127.0.0.1/v1/inference', { prompt: 'hi' });
const stream: Observable<TokenEvent<string>> = streamJob<string>('http://127.0.0.1/v1/inference/job-x/stream');

const shared = new JobRegistry<string>({ backend: redisBackend({ url: 'redis://127.0.0.1:6379' }) });
const scrape: Promise<string> = registryMetrics(registry).metrics();
const streams = createDurableStreamsHandler(registry);
void [events, tokens, code, nodeHandler, fetchHandler, submitted, stream, shared, scrape, streams];
`;

/** The AI SDK entry points: their types are \`ai\`'s, which name DOM types and need @types/json-schema. */
const AI_CONSUMER = `
import { JobRegistry } from 'job-registry';
import { createChatHandler, createFetchChatHandler, streamChat, chatKey, type ChatRequest } from 'job-registry/ai-sdk';
import { JobChatTransport } from 'job-registry/ai-sdk/client';

const registry = new JobRegistry<string, { prompt: string }>();
const chat = createChatHandler(registry, {
  execute: (request: ChatRequest) => [{ type: 'start' as const, messageId: request.id }, { type: 'finish' as const }],
});
const fetchChat: (request: Request) => Promise<Response> = createFetchChatHandler(registry, {
  execute: streamChat(async function* () {
    yield { type: 'text-start' as const, id: 't' };
  }),
});
const key: string = chatKey('alice', 'chat-1');
const stopped: Promise<boolean> = new JobChatTransport({ api: '/api/chat' }).stop('chat-1');
void [chat, fetchChat, key, stopped];
`;

// node16: a Node app (lib without DOM, Node's own fetch types); bundler: a web-facing app (DOM lib). The
// AI SDK's own declarations name DOM types (HeadersInit, FileList...): a Node app using them has the DOM lib.
const SETUPS = {
  node16: { module: 'node16', moduleResolution: 'node16', lib: ['ES2022'], files: ['consumer.ts'] },
  'node16 + ai': {
    module: 'node16',
    moduleResolution: 'node16',
    lib: ['ES2022', 'DOM'],
    files: ['consumer-ai.ts'],
  },
  bundler: {
    module: 'esnext',
    moduleResolution: 'bundler',
    lib: ['ES2022', 'DOM'],
    files: ['consumer.ts', 'consumer-ai.ts'],
  },
};

test('consumers of every entry point typecheck under node16 and bundler with skipLibCheck off; DateTime is not any', async () => {
  expect(Object.keys(manifest.exports)).toEqual([
    '.',
    './http',
    './client',
    './redis',
    './fetch',
    './metrics',
    './durable-streams',
    './ai-sdk',
    './ai-sdk/client',
    './package.json',
  ]);
  writeFileSync(join(app, 'consumer.ts'), CONSUMER);
  writeFileSync(join(app, 'consumer-ai.ts'), AI_CONSUMER);
  const checks = Object.entries(SETUPS).map(async ([name, { files, ...options }]) => {
    const config = `tsconfig.${name.replace(/\W+/g, '-')}.json`;
    const compilerOptions = {
      ...options,
      target: 'ES2022',
      types: ['node'],
      strict: true,
      skipLibCheck: false,
      noEmit: true,
    };
    writeFileSync(join(app, config), JSON.stringify({ compilerOptions, files }, null, 2));
    try {
      await run(process.execPath, [TSC, '-p', config], { cwd: app, env });
      return `${name}: ok`;
    } catch (e) {
      const { stdout, stderr } = e as { stdout?: string; stderr?: string };
      return `${name}:\n${stdout ?? ''}${stderr ?? ''}`;
    }
  });
  expect(await Promise.all(checks)).toEqual(Object.keys(SETUPS).map((name) => `${name}: ok`));
}, 300_000);

test('plain Node imports every entry point, with one rxjs shared with the app', () => {
  const names = Object.keys(manifest.exports)
    .filter((k) => k !== './package.json')
    .map((k) => join('job-registry', k));
  writeFileSync(
    join(app, 'import.mjs'),
    `import { Observable } from 'rxjs';
     const names = ${JSON.stringify(names)};
     const loaded = await Promise.all(names.map((n) => import(n)));
     const registry = new loaded[0].JobRegistry();
     console.log(JSON.stringify({
       exports: loaded.map((m) => Object.keys(m).length > 0),
       sameRxjs: registry.events$ instanceof Observable,
     }));
     await registry.dispose();`,
  );
  const out = spawnSync(process.execPath, ['import.mjs'], { cwd: app, encoding: 'utf8', env });
  expect(out.stderr).toBe('');
  expect(JSON.parse(out.stdout)).toEqual({ exports: names.map(() => true), sameRxjs: true });
});

/**
 * `require()` of this ESM package works on a Node that loads ES modules from require (Node >= 20.19 and
 * >= 22.12 by default: `process.features.require_module`). Where it does not, Node's own error names the
 * cause: ERR_REQUIRE_ESM, "require() of ES Module", and points at dynamic import().
 */
test('require() of every entry point works where Node supports require(esm), and fails clearly where not', () => {
  const names = Object.keys(manifest.exports)
    .filter((k) => k !== './package.json')
    .map((k) => join('job-registry', k));
  writeFileSync(
    join(app, 'require.cjs'),
    `const names = ${JSON.stringify(names)};
     const loaded = names.map((n) => require(n));
     const registry = new loaded[0].JobRegistry();
     console.log(JSON.stringify({ exports: loaded.map((m) => Object.keys(m).length > 0), id: registry.createJob().slice(0, 4) }));
     registry.dispose();`,
  );
  const refused = (flags: string[]): void => {
    const out = spawnSync(process.execPath, [...flags, 'require.cjs'], { cwd: app, encoding: 'utf8', env });
    expect(out.status).not.toBe(0);
    expect(out.stderr).toContain('ERR_REQUIRE_ESM');
    expect(out.stderr).toMatch(/require\(\) of ES Module .*job-registry/);
    expect(out.stderr).toContain('dynamic import()');
  };
  // Asked of a child: jest's sandboxed `process` does not carry `features.require_module`.
  const features = spawnSync(process.execPath, ['-p', 'process.features.require_module === true'], {
    encoding: 'utf8',
    env,
  });
  if (features.stdout.trim() !== 'true') return refused([]);
  const out = spawnSync(process.execPath, ['require.cjs'], { cwd: app, encoding: 'utf8', env });
  expect(out.stderr).toBe('');
  expect(JSON.parse(out.stdout)).toEqual({ exports: names.map(() => true), id: 'job-' });
  // The same package on a Node without require(esm), as Node 20.19 is when started with this flag.
  refused(['--no-experimental-require-module']);
});
