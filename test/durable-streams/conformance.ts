/**
 * Runs the published Durable Streams conformance suite (vitest, in a child process) against this
 * library's handler on port 0, on the memory backend or on Redis (`--redis`), and prints the counts and
 * every failing test. Exits 1 when a test fails.
 *
 *   npx tsx test/durable-streams/conformance.ts [--redis] [--long-poll-ms=3000] [--json=out.json]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDurableServer } from './server.js';

export interface ConformanceResult {
  total: number;
  passed: number;
  failed: string[];
  skipped: number;
}

const here = dirname(fileURLToPath(import.meta.url));

/** Runs the suite against `baseUrl`; resolves with its counts and the full names of failing tests. */
export function runConformance(baseUrl: string, jsonOut?: string): Promise<ConformanceResult> {
  const dir = mkdtempSync(join(tmpdir(), 'ds-conformance-'));
  const out = jsonOut ?? join(dir, 'report.json');
  const vitest = join(here, '..', '..', 'node_modules', '.bin', 'vitest');
  return new Promise((resolve, reject) => {
    const child = spawn(
      vitest,
      ['run', '--root', here, '--reporter=json', `--outputFile=${out}`, 'conformance.spec.mjs'],
      { env: { ...process.env, CONFORMANCE_TEST_URL: baseUrl }, stdio: ['ignore', 'ignore', 'inherit'] },
    );
    child.on('error', reject);
    child.on('exit', () => {
      try {
        const r = JSON.parse(readFileSync(out, 'utf8')) as {
          numTotalTests: number;
          numPassedTests: number;
          numPendingTests: number;
          testResults: Array<{ assertionResults: Array<{ status: string; fullName: string }> }>;
        };
        const failed = r.testResults.flatMap((f) =>
          f.assertionResults.filter((a) => a.status === 'failed').map((a) => a.fullName),
        );
        resolve({ total: r.numTotalTests, passed: r.numPassedTests, failed, skipped: r.numPendingTests });
      } catch (e) {
        reject(e);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const redis = process.argv.includes('--redis')
    ? (process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
    : undefined;
  const poll = process.argv.find((a) => a.startsWith('--long-poll-ms='));
  const json = process.argv.find((a) => a.startsWith('--json='));
  const streams = poll === undefined ? {} : { longPollTimeoutMs: Number(poll.slice(15)) };
  const prefix = `jrtest:ds-conformance:${process.pid}:`;
  const server = await startDurableServer(
    redis === undefined ? { streams } : { redisUrl: redis, prefix, streams },
  );
  const started = Date.now();
  const r = await runConformance(server.url, json?.slice(7));
  await server.close();
  console.log(
    `durable streams conformance (${redis === undefined ? 'memory' : 'redis'}): ${r.passed}/${r.total} passed, ` +
      `${r.failed.length} failed, ${r.skipped} skipped, in ${Math.round((Date.now() - started) / 1000)} s`,
  );
  for (const f of r.failed) console.log(`  FAIL ${f}`);
  process.exit(r.failed.length === 0 ? 0 : 1);
}
