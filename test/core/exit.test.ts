import { spawnSync } from 'node:child_process';

test('after dispose() the process exits by itself: no timer or subscription keeps it alive', () => {
  const script = `
    import { JobRegistry } from './src/core/index.ts';
    const r = new JobRegistry({ retention: { hours: 1 }, claimTimeout: { hours: 1 } });
    for (let i = 0; i < 100; i++) { const id = r.createJob(); if (i % 2) { r.emit(id, 'x'); r.updateState(id, 'completed'); } }
    r.tokens$(r.jobIds()[0]).subscribe({ error() {} });
    await r.dispose();
    console.log('disposed');
  `;
  const t0 = Date.now();
  const out = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: process.cwd(),
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  expect(out.stderr).toBe('');
  expect(out.stdout.trim()).toBe('disposed');
  expect(out.status).toBe(0);
  expect(Date.now() - t0).toBeLessThan(20_000);
});
