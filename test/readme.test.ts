import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';

test("the README's tour snippet runs as written and prints what it says", () => {
  const readme = readFileSync('README.md', 'utf8');
  const tour = readme.slice(readme.indexOf('## A short tour'));
  const code = /```ts\n([\s\S]*?)```/.exec(tour)![1]!;
  expect(code).toContain("from 'job-registry'");
  mkdirSync('test-output', { recursive: true });
  writeFileSync('test-output/readme-tour.ts', code);
  const out = spawnSync(process.execPath, ['--import', 'tsx', 'test-output/readme-tour.ts'], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  expect(out.stderr).toBe('');
  const lines = out.stdout.trim().split('\n');
  expect(lines[0]).toMatch(/^created job-[0-9a-f-]{36}$/);
  expect(lines.slice(1)).toEqual([
    expect.stringMatching(/^stateChanged job-/),
    '0 Hello',
    '1 world',
    'done',
    expect.stringMatching(/^stateChanged job-/),
  ]);
});
