/**
 * The example server's `/v1/responses` with the official OpenAI Python client (`openai` from the package
 * index, in a virtual environment made for this run): a background stream read to its end, a dropped
 * stream resumed with `starting_after`, a cancel. In CI (CI=true) Python and the package must install;
 * elsewhere the suite skips, loudly, without them.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../../examples/inference-server.js';

const PYTHON = process.env.PYTHON ?? 'python3';
const SCRIPT = 'test/examples/python/openai_responses.py';
const KEY = 'python-openai-key-0123456789ab';
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** A virtual environment with `openai` installed, or `undefined` (skip) outside CI when that fails. */
function openaiVenv(): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'jr-openai-py-'));
  const steps: string[][] = [
    [PYTHON, '-m', 'venv', dir],
    // No retries: an unreachable index fails at once instead of after minutes.
    [join(dir, 'bin', 'pip'), 'install', '-q', '--retries', '0', '--timeout', '5', 'openai>=1.66'],
  ];
  for (const [cmd, ...args] of steps) {
    const r = spawnSync(cmd!, args, { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      const why = `${cmd} ${args.join(' ')} failed: ${r.stderr || r.error?.message || r.status}`;
      if (process.env.CI === 'true') throw new Error(`the OpenAI Python client is required in CI; ${why}`);
      console.warn(`SKIPPING the OpenAI Python client tests: ${why}`);
      return undefined;
    }
  }
  return dir;
}

interface PyEvent {
  type: string;
  seq?: number;
  delta?: string | null;
  id?: string | null;
  status?: string | null;
  output_text?: string | null;
}

function run(venv: string, base: string, args: string[]): Promise<PyEvent[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(venv, 'bin', 'python'), [SCRIPT, base, KEY, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`the Python client exited with ${code}:\n${err}\n${out}`));
      resolve(
        out
          .split('\n')
          .filter((l) => l.trim() !== '')
          .map((l) => JSON.parse(l) as PyEvent),
      );
    });
  });
}

const venv = openaiVenv();
const maybe = venv === undefined ? describe.skip : describe;

maybe('the OpenAI Python client against /v1/responses', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({ port: 0, apiKeys: [KEY], logger: quiet });
  }, 30_000);
  afterAll(async () => {
    await server?.close();
    if (venv !== undefined) rmSync(venv, { recursive: true, force: true });
  });

  test('a background stream parses from its first event to response.completed', async () => {
    const words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon'];
    const events = await run(venv!, server.url, ['stream', ...words]);
    expect(events[0]!.type).toBe('response.created');
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i));
    const text = events.map((e) => (e.type === 'response.output_text.delta' ? e.delta : '')).join('');
    expect(text).toBe(words.join(' '));
    expect(events.at(-1)).toMatchObject({ type: 'response.completed', status: 'completed' });
    expect(events.at(-1)!.output_text).toBe(words.join(' '));
  }, 30_000);

  test('a dropped stream resumes with starting_after: no event lost or repeated', async () => {
    const words = Array.from({ length: 20 }, (_, i) => `w${i}`);
    const first = await run(venv!, server.url, ['drop', '5', ...words]);
    const id = first.find((e) => e.type === 'response.created')!.id!;
    const last = first.at(-1)!.seq!;
    const rest = await run(venv!, server.url, ['resume', id, String(last)]);
    expect(rest.map((e) => e.seq)).toEqual(rest.map((_, i) => last + 1 + i));
    const text = [...first, ...rest]
      .map((e) => (e.type === 'response.output_text.delta' ? e.delta : ''))
      .join('');
    expect(text).toBe(words.join(' '));
    expect(rest.at(-1)).toMatchObject({ type: 'response.completed', status: 'completed' });
  }, 30_000);

  test('cancel stops a running response', async () => {
    const res = await fetch(`${server.url}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'm',
        input: 'long answer',
        max_output_tokens: 5000,
        background: true,
        metadata: { delay_ms: '20' },
      }),
    });
    const { id } = (await res.json()) as { id: string };
    const [cancelled] = await run(venv!, server.url, ['cancel', id]);
    expect(cancelled).toMatchObject({ type: 'cancelled', id, status: 'cancelled' });
    expect(server.registry.getJobState(id.slice('resp_'.length))).toBe('cancelled');
  }, 30_000);
});
