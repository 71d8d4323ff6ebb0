/**
 * The Python client (`examples/python/job_client.py`, standard library only, built from docs/wire.md) against
 * the example server in open mode: a forced drop mid-stream is resumed with `Last-Event-ID`, with no gap and
 * no duplicate, and a failed job is reported as failed.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { IncomingMessage } from 'node:http';
import { startServer, type RunningServer } from '../../examples/inference-server.js';

const PYTHON = process.env.PYTHON ?? 'python3';
const CLIENT = 'examples/python/job_client.py';

/** Whether python3 runs here. In CI (CI=true) it must: a missing python3 fails instead of skipping. */
function havePython(): boolean {
  const r = spawnSync(PYTHON, ['--version'], { encoding: 'utf8' });
  if (r.status === 0) return true;
  if (process.env.CI === 'true') throw new Error(`python3 is required in CI but '${PYTHON}' does not run`);
  console.warn(`SKIPPING the Python client tests: '${PYTHON}' not found (install python3)`);
  return false;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the client CLI. Asynchronous: the server answers from this same event loop. */
function runClient(args: string[], timeoutMs = 20_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [CLIENT, ...args], {
      cwd: process.cwd(),
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the Python client did not finish in ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The `--json` output: one object per line. */
const linesOf = (stdout: string): Array<Record<string, unknown>> =>
  stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const python = havePython();
const maybe = python ? describe : describe.skip;

maybe('examples/python/job_client.py against the example server (open mode)', () => {
  let server: RunningServer;
  /** Each GET of a token stream: its job and the Last-Event-ID it sent. */
  const streamRequests: Array<{ job: string; lastEventId: string | undefined }> = [];

  beforeAll(async () => {
    const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
    server = await startServer({ port: 0, logger: quiet });
    server.server.on('request', (req: IncomingMessage) => {
      const m = /^\/v1\/inference\/([^/?]+)\/stream/.exec(req.url ?? '');
      if (m !== null)
        streamRequests.push({ job: m[1]!, lastEventId: req.headers['last-event-id'] as string | undefined });
    });
  }, 30_000);
  afterAll(() => server?.close());

  test('a drop after 10 tokens is resumed with Last-Event-ID: 9: all 30 tokens once, in order, then done', async () => {
    const words = ['alpha', 'beta', 'gamma', 'delta'];
    const run = await runClient([
      '--url',
      server.url,
      '--prompt',
      words.join(' '),
      '--max-tokens',
      '30',
      '--delay-ms',
      '10',
      '--drop-after',
      '10',
      '--reconnect-ms',
      '50',
      '--json',
    ]);
    expect([run.code, run.stderr]).toEqual([0, expect.any(String)]);
    const lines = linesOf(run.stdout);
    const jobId = lines[0]!.job_id as string;
    expect(lines[0]).toEqual({
      job_id: expect.stringMatching(/^job-/),
      sse_url: `/v1/inference/${jobId}/stream`,
    });
    const tokens = lines.slice(1, -1);
    expect(tokens.map((t) => t.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(tokens.map((t) => t.token)).toEqual(Array.from({ length: 30 }, (_, i) => words[i % words.length]));
    expect(lines.at(-1)).toEqual({ end: 'done', state: 'completed' });
    // The drop really happened, and the client resumed after the last seq it had.
    expect(run.stderr).toMatch(
      /dropped on purpose after 10 token\(s\); resuming with Last-Event-ID: 9 \(attempt 1\)/,
    );
    expect(streamRequests.filter((r) => r.job === jobId).map((r) => r.lastEventId)).toEqual([undefined, '9']);
    expect(server.registry.getJob(jobId)).toMatchObject({ state: 'completed', tokenCount: 30 });
  });

  test('fail_after: the client reports the failure (state failed, "simulated failure") and exits 3', async () => {
    const run = await runClient([
      '--url',
      server.url,
      '--prompt',
      'a b c',
      '--max-tokens',
      '30',
      '--delay-ms',
      '10',
      '--fail-after',
      '5',
      '--json',
    ]);
    expect(run.code).toBe(3);
    const lines = linesOf(run.stdout);
    expect(lines.slice(1, -1)).toEqual(['a', 'b', 'c', 'a', 'b'].map((token, seq) => ({ seq, token })));
    expect(lines.at(-1)).toEqual({ end: 'error', state: 'failed', error: 'simulated failure' });
    expect(run.stderr).toContain('failed: simulated failure');
  });

  test('without --json it prints the tokens, space-separated, and exits 0 on done', async () => {
    const run = await runClient(['--url', server.url, '--prompt', 'one two three', '--max-tokens', '5']);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('one two three one two\n');
    expect(run.stderr).toMatch(/job job-[0-9a-f-]{36}[\s\S]*done \(completed\)/);
  });
});
