import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';

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

test("the README's first screen: install and run the example server, then the tests", () => {
  const readme = readFileSync('README.md', 'utf8');
  const first = /```sh\n([\s\S]*?)```/.exec(readme)!;
  expect(first.index).toBeLessThan(readme.indexOf('## '));
  const lines = first[1]!.trim().split('\n');
  expect(lines[0]).toMatch(/^npm install && npm start\s+#/);
  expect(lines[1]).toMatch(/^npm test\s+#/);
  expect(JSON.parse(readFileSync('package.json', 'utf8')).scripts.start).toBe(
    'tsx examples/inference-server.ts',
  );
});

test("the example server's environment table lists every variable it reads, each limit with its default", async () => {
  const { ENV_VARS, DEFAULT_LIMITS } = await import('../examples/config.js');
  const readme = readFileSync('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('## The example server'), readme.indexOf('## Security'));
  const rows = new Map<string, string>();
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length < 4) continue;
    for (const name of cells[1]!.match(/`[A-Z_]+`/g) ?? []) rows.set(name.slice(1, -1), cells[2]!);
  }
  expect([...rows.keys()].sort()).toEqual(ENV_VARS.map((v) => v.name).sort());
  for (const v of ENV_VARS) {
    const limit = (DEFAULT_LIMITS as Record<string, number>)[v.option];
    if (limit === undefined) continue;
    expect([v.name, rows.get(v.name)]).toEqual([v.name, `\`${limit}\``]);
  }
});

test('the Security section says in bold what is open', () => {
  const readme = readFileSync('README.md', 'utf8');
  const security = readme.slice(readme.indexOf('## Security'), readme.indexOf('## Several processes'));
  for (const claim of [
    '**Without `API_KEYS` the example server is open: anyone who can reach it can submit jobs and list, read,\n  stream and cancel every job.**',
    '**The library handler without `authenticate` is open in the same way**',
    '**Per-principal limits count per process**',
    '**CORS is off by default**',
    '**several replicas must share one `STREAM_TOKEN_SECRET`**',
  ])
    expect(security).toContain(claim);
});

test("the README's openai snippet runs as written against the example server and prints what it says", async () => {
  const { startServer } = await import('../examples/inference-server.js');
  const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
  const server = await startServer({ port: 0, logger: quiet });
  try {
    const readme = readFileSync('README.md', 'utf8');
    const section = readme.slice(
      readme.indexOf('## OpenAI-compatible background responses'),
      readme.indexOf('## Client (browser or Node)'),
    );
    const code = [...section.matchAll(/```ts\n([\s\S]*?)```/g)]
      .map((m) => m[1]!)
      .find((c) => c.includes("from 'openai'"))!;
    expect(code).toContain("baseURL: 'http://127.0.0.1:8080/v1'");
    mkdirSync('test-output', { recursive: true });
    writeFileSync(
      'test-output/readme-openai.ts',
      code.replace('http://127.0.0.1:8080/v1', `${server.url}/v1`),
    );
    // Asynchronously: the server answers from this process.
    const out = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'test-output/readme-openai.ts'],
      {
        encoding: 'utf8',
        timeout: 20_000,
        env: { ...process.env, NODE_OPTIONS: '' },
      },
    );
    expect(out.stderr).toBe('');
    expect(out.stdout).toBe('one two three four five six seven eight\ncancelled\n');
  } finally {
    await server.close();
  }
});
