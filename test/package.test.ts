import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

test('package.json exports the four entry points, types first, and they load from dist by name', () => {
  const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
  expect(pkg.name).toBe('job-registry');
  expect(pkg.type).toBe('module');
  expect(pkg.sideEffects).toBe(false);
  expect(pkg.license).toBe('GPL-3.0-or-later');
  for (const entry of ['.', './http', './client', './redis']) {
    expect(Object.keys(pkg.exports[entry])[0]).toBe('types');
  }
  expect(pkg.peerDependenciesMeta.ioredis.optional).toBe(true);
  expect(Object.keys(pkg.dependencies).sort()).toEqual(['luxon', 'rxjs', 'uuid']);
  const script = `
    const core = await import('job-registry');
    const http = await import('job-registry/http');
    const client = await import('job-registry/client');
    const redis = await import('job-registry/redis');
    console.log([typeof core.JobRegistry, typeof http.createJobHandler, typeof client.streamJob, typeof redis.redisBackend].join(','));
  `;
  const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  expect(out.stderr).toBe('');
  expect(out.stdout.trim()).toBe('function,function,function,function');
});
