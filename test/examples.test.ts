import { spawnSync } from 'node:child_process';

test('examples/console-dashboard.ts prints state changes and the running count, then exits by itself', () => {
  const out = spawnSync(process.execPath, ['--import', 'tsx', 'examples/console-dashboard.ts'], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  expect(out.stderr).toBe('');
  expect(out.status).toBe(0);
  const lines = out.stdout.split('\n');
  expect(lines.filter((l) => /queued -> running/.test(l))).toHaveLength(5);
  expect(lines.filter((l) => /running -> completed/.test(l))).toHaveLength(4);
  expect(lines.some((l) => /running -> failed \(simulated failure\)/.test(l))).toBe(true);
  expect(lines.filter((l) => /token #\d+: /.test(l)).map((l) => l.trim())).toEqual(
    'job 0 says hello to the console'.split(' ').map((w, i) => `token #${i}: ${w}`),
  );
  expect(
    lines
      .filter((l) => l.includes('running jobs:'))
      .at(-1)!
      .trim(),
  ).toBe('running jobs: 0');
});
