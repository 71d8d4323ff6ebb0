import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { freePort } from './helpers/private-redis.js';

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

test("the README's first screen: install the library, an example importing it, then this repo's two commands", () => {
  const readme = readFileSync('README.md', 'utf8');
  const first = readme.split('\n').slice(0, 60).join('\n');
  expect(first).toMatch(/^npm install job-registry rxjs\s+#/m);
  expect(first).toContain("from 'job-registry'");
  const repo = [...first.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!.trim().split('\n'));
  const commands = repo.find((lines) => lines[0]!.startsWith('npm install && npm start'))!;
  expect(commands[0]).toMatch(/^npm install && npm start\s+#/);
  expect(commands[1]).toMatch(/^npm test\s+#/);
  expect(readme.split('\n').length).toBeLessThanOrEqual(350);
  expect(JSON.parse(readFileSync('package.json', 'utf8')).scripts.start).toBe(
    'tsx examples/inference-server.ts',
  );
});

test("the README's end-to-end example runs: a server, a model, a client that follows the stream", async () => {
  const readme = readFileSync('README.md', 'utf8');
  const code = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)]
    .map((m) => m[1]!)
    .find((c) => c.includes("from 'job-registry/client'"))!;
  expect(code.split('\n').length).toBeLessThanOrEqual(32);
  const port = await freePort();
  mkdirSync('test-output', { recursive: true });
  writeFileSync('test-output/readme-e2e.ts', code.replaceAll('8080', String(port)));
  const out = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'test-output/readme-e2e.ts'], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  expect(out.stderr).toBe('');
  expect(out.stdout).toBe('0 hello\n1 streaming\n2 world\n');
});

test('every TypeScript example of the README typechecks under --strict against the built package', () => {
  const readme = readFileSync('README.md', 'utf8');
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  expect(blocks.length).toBeGreaterThanOrEqual(3);
  const dir = 'test-output/readme-examples';
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  // Modules (top-level await), resolved as a user's project resolves them: 'job-registry' is this
  // package, by its name, through its exports map and the built dist/.
  blocks.forEach((code, i) =>
    writeFileSync(`${dir}/example-${i}.ts`, code.includes('export ') ? code : `${code}\nexport {};\n`),
  );
  writeFileSync(
    `${dir}/tsconfig.json`,
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        skipLibCheck: true,
        types: ['node'],
        typeRoots: ['../../node_modules/@types'],
      },
      include: ['*.ts'],
    }),
  );
  const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', `${dir}/tsconfig.json`], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(tsc.stdout + tsc.stderr).toBe('');
  expect(tsc.status).toBe(0);
});

test("the example server's environment table lists every variable it reads, each limit with its default", async () => {
  const { ENV_VARS, DEFAULT_LIMITS } = await import('../examples/config.js');
  const section = readFileSync('docs/example-server.md', 'utf8');
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

test('the security page says in bold what is open', () => {
  const security = readFileSync('docs/security.md', 'utf8');
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
    const section = readFileSync('docs/openai.md', 'utf8');
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
