import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const SRC = resolve('src');
const files = readdirSync(SRC, { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.ts'))
  .map((f) => join(SRC, f));

interface Import {
  from: string;
  spec: string;
  typeOnly: boolean;
}

const imports: Import[] = files.flatMap((file) => {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^(import|export)\s+(type\s+)?[^;]*?from\s+'([^']+)'/gms)].map((m) => ({
    from: file,
    spec: m[3]!,
    typeOnly: m[2] !== undefined,
  }));
});

const layerOf = (file: string): string => relative(SRC, file).split('/')[0]!;
const target = (i: Import): string | undefined =>
  i.spec.startsWith('.') ? resolve(dirname(i.from), i.spec.replace(/\.js$/, '.ts')) : undefined;

// Each layer depends only on the ones above it: core <- protocol (the runtime-neutral protocol core) <- http
// (the Node adapter), fetch (the Web-standard adapter), durable-streams; client takes types only from protocol.
const allowed: Record<string, string[]> = {
  core: ['core'],
  protocol: ['core', 'protocol'],
  http: ['core', 'protocol', 'http'],
  client: ['core', 'client'],
  redis: ['core', 'redis'],
  fetch: ['core', 'protocol', 'fetch'],
  metrics: ['core', 'metrics'],
  'durable-streams': ['core', 'protocol', 'http', 'fetch', 'durable-streams'],
  // The chat routes are a protocol preset; the chat transport reuses the client's error.
  'ai-sdk': ['core', 'protocol', 'http', 'fetch', 'client', 'ai-sdk'],
};

/** The one module that loads `ai` at run time: the chat transport, its own entry point. */
const AI_LOADER = 'ai-sdk/client.ts';

test('layers: each entry point imports only the layers above it, and nothing heavy it must not', () => {
  const bad: string[] = [];
  for (const i of imports) {
    const layer = layerOf(i.from);
    const t = target(i);
    if (t !== undefined) {
      const to = layerOf(t);
      const ok = allowed[layer]!.includes(to) || (layer === 'client' && to === 'protocol' && i.typeOnly);
      if (!ok) bad.push(`${relative(SRC, i.from)} imports ${i.spec}`);
    } else {
      if (layer === 'core' && (i.spec.startsWith('node:') || i.spec === 'ioredis'))
        bad.push(`${relative(SRC, i.from)} imports ${i.spec}`);
      if (layer === 'client' && !['rxjs'].includes(i.spec))
        bad.push(`client ${relative(SRC, i.from)} imports ${i.spec}`);
      if (layer === 'http' && i.spec === 'ioredis') bad.push(`${relative(SRC, i.from)} imports ioredis`);
      if (
        (layer === 'protocol' ||
          layer === 'fetch' ||
          ((layer === 'durable-streams' || layer === 'ai-sdk') && !i.typeOnly)) &&
        (i.spec.startsWith('node:') || i.spec === 'ioredis')
      )
        bad.push(`${relative(SRC, i.from)} imports ${i.spec}`);
      // `ai` is an optional peer: only the ai-sdk layer names it, and only its transport loads it.
      if ((i.spec === 'ai' || i.spec.startsWith('ai/')) && layer !== 'ai-sdk')
        bad.push(`${relative(SRC, i.from)} imports ${i.spec}`);
      if ((i.spec === 'ai' || i.spec.startsWith('ai/')) && !i.typeOnly && relative(SRC, i.from) !== AI_LOADER)
        bad.push(`${relative(SRC, i.from)} loads ${i.spec} at run time`);
    }
  }
  expect(imports.length).toBeGreaterThan(20);
  expect(bad).toEqual([]);
});

test('job-registry/ai-sdk loads no module of ai at run time: only job-registry/ai-sdk/client does', () => {
  const reached = new Set<string>();
  const bare = new Set<string>();
  const visit = (file: string): void => {
    if (reached.has(file)) return;
    reached.add(file);
    for (const i of imports.filter((x) => x.from === file && !x.typeOnly)) {
      const t = target(i);
      if (t !== undefined) visit(t);
      else bare.add(i.spec);
    }
  };
  visit(join(SRC, 'ai-sdk/index.ts'));
  expect(reached.size).toBeGreaterThan(10);
  expect(reached.has(join(SRC, AI_LOADER))).toBe(false);
  expect(
    [...bare].filter((spec) => spec === 'ai' || spec.startsWith('ai/') || spec.startsWith('@ai-sdk/')),
  ).toEqual([]);
});

test('no import cycles between source files', () => {
  const graph = new Map<string, string[]>(files.map((f) => [f, []]));
  for (const i of imports) {
    const t = target(i);
    if (t !== undefined && !i.typeOnly) graph.get(i.from)!.push(t);
  }
  const state = new Map<string, 'visiting' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]): void => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'visiting') {
      cycles.push([...path.slice(path.indexOf(f)), f].map((x) => relative(SRC, x)).join(' -> '));
      return;
    }
    state.set(f, 'visiting');
    for (const next of graph.get(f) ?? []) visit(next, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of files) visit(f, []);
  expect(cycles).toEqual([]);
});
