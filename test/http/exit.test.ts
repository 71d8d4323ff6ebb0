/**
 * A refused body leaves nothing behind that holds the process: the Node handler reads on and throws away
 * what is left of a body it answered 413 (for at most 10 s), and a client that goes away mid-body ends
 * that at once. Its server's process exits as soon as it has closed.
 */
import { spawn } from 'node:child_process';

// Closing takes milliseconds; the discard's bound is 10 s.
const PROMPTLY_MS = 1000;

test('a process exits at once after a refused client went away mid-body', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/refused-exit.ts'], {
    cwd: process.cwd(),
    env: { ...process.env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const report = /^\{"status".*$/m.exec(out);
  expect({ code, report: report !== null }).toEqual({ code: 0, report: true });
  const { status, livedOnMs } = JSON.parse(report![0]) as { status: string; livedOnMs: number };
  expect(status).toBe('HTTP/1.1 413 Payload Too Large');
  expect(livedOnMs).toBeLessThan(PROMPTLY_MS);
}, 30_000);
