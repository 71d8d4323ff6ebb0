/**
 * A refused body leaves nothing behind that holds the process: the Node handler reads on and throws away
 * what is left of a body it answered 413 (for at most 10 s), and a client that goes away mid-body ends
 * that at once. Its server's process exits as soon as it has closed.
 */
import { runReport } from '../helpers/processes.js';

// Closing takes milliseconds; the discard's bound is 10 s.
const PROMPTLY_MS = 1000;

test('a process exits at once after a refused client went away mid-body', async () => {
  const { status, livedOnMs } = await runReport<{ status: string; livedOnMs: number }>(
    'test/helpers/refused-exit.ts',
  );
  expect(status).toBe('HTTP/1.1 413 Payload Too Large');
  expect(livedOnMs).toBeLessThan(PROMPTLY_MS);
}, 30_000);
