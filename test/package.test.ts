import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const entries = Object.keys(pkg.exports).filter((k) => k !== './package.json');

test('package.json exports every entry point, types first and a default last, and they load from dist by name', () => {
  expect(pkg.name).toBe('job-registry');
  expect(pkg.type).toBe('module');
  expect(pkg.sideEffects).toBe(false);
  expect(pkg.license).toBe('GPL-3.0-or-later');
  expect(entries).toEqual(
    expect.arrayContaining(['.', './http', './client', './redis', './fetch', './ai-sdk', './ai-sdk/client']),
  );
  for (const entry of entries) {
    const conditions = pkg.exports[entry];
    // `default` lets require() load the ESM build on Node versions with require(esm).
    expect(Object.keys(conditions)).toEqual(['types', 'import', 'default']);
    expect(conditions.default).toBe(conditions.import);
  }
  expect(pkg.main).toBe(pkg.exports['.'].import);
  expect(pkg.types).toBe(pkg.exports['.'].types);
  const script = `
    const core = await import('job-registry');
    const http = await import('job-registry/http');
    const client = await import('job-registry/client');
    const redis = await import('job-registry/redis');
    const fetch = await import('job-registry/fetch');
    console.log([typeof core.JobRegistry, typeof http.createJobHandler, typeof client.streamJob, typeof redis.redisBackend, typeof fetch.createFetchHandler].join(','));
  `;
  const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  expect(out.stderr).toBe('');
  expect(out.stdout.trim()).toBe('function,function,function,function,function');
});

test('dependencies: what the public types need is installed with the package; rxjs and ioredis are peers', () => {
  // DateTime is in the public types, so its declarations come with the package.
  expect(Object.keys(pkg.dependencies).sort()).toEqual(['@types/luxon', 'luxon']);
  // The API hands out Observables: one rxjs per app, or instanceof Observable breaks.
  expect(pkg.peerDependencies.rxjs).toBe('^7.8.0');
  expect(pkg.peerDependenciesMeta?.rxjs?.optional).not.toBe(true);
  expect(pkg.devDependencies.rxjs).toBeDefined();
  expect(pkg.peerDependenciesMeta.ioredis.optional).toBe(true);
  // Only job-registry/ai-sdk/client loads it; the pinned devDependency is the version the tests run.
  expect(pkg.peerDependenciesMeta.ai.optional).toBe(true);
  expect(pkg.devDependencies.ai).toMatch(/^\d+\.\d+\.\d+$/);
  for (const name of Object.keys(pkg.peerDependencies)) expect(pkg.dependencies[name]).toBeUndefined();
});

test('the API reference (typedoc.json) covers every entry point and fails on a warning', () => {
  const typedoc = JSON.parse(readFileSync('typedoc.json', 'utf8'));
  const sources = entries.map((e) => pkg.exports[e].import.replace(/^\.\/dist\/(.*)\.js$/, 'src/$1.ts'));
  expect([...typedoc.entryPoints].sort()).toEqual(sources.sort());
  expect(typedoc.treatWarningsAsErrors).toBe(true);
  expect(typedoc.out).toBe('docs/api');
});
