/**
 * The chaos run from the command line:
 *
 *   npm run chaos -- --seed 7 --minutes 2            # single Redis of its own, faults on
 *   npm run chaos -- --seed 7 --minutes 1 --cluster  # a Redis Cluster (REDIS_CLUSTER_NODES or a private one)
 *   npm run chaos -- --seed 7 --minutes 1 --no-faults            # the same workload, no fault injected
 *   npm run chaos -- --seed 7 --minutes 1 --no-faults --no-stress # and no replay limit, fat bursts or stalls
 *
 * Prints the report table and exits 1 on any violation. `--json FILE` also writes the whole report.
 */
import { writeFileSync } from 'node:fs';
import { mkdirSync } from 'node:fs';
import { formatReport, runChaos, type FaultKind } from './harness.js';

function usage(message?: string): never {
  if (message) console.error(message);
  console.error(
    'usage: npm run chaos -- [--seed N] [--minutes M | --seconds S] [--cluster] [--servers N] [--no-faults] [--no-stress] [--concurrency N] [--details N] [--json FILE] [--logs DIR] [--only KIND,KIND] [--restart-ms MS] [--quiet]',
  );
  process.exit(2);
}

const args = process.argv.slice(2);
let seed = 1;
let durationMs = 60_000;
let mode: 'single' | 'cluster' = 'single';
let servers = 3;
let faults = true;
let stress = true;
let concurrency: number | undefined;
let details = 20;
let json: string | undefined;
let quiet = false;
let only: string[] | undefined;
let logDir: string | undefined;
let restartMs: number | undefined;
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  const value = (): number => {
    const v = Number(args[++i]);
    if (!Number.isFinite(v)) usage(`${a} needs a number`);
    return v;
  };
  if (a === '--seed') seed = value();
  else if (a === '--minutes') durationMs = Math.round(value() * 60_000);
  else if (a === '--seconds') durationMs = Math.round(value() * 1000);
  else if (a === '--cluster') mode = 'cluster';
  else if (a === '--servers') servers = value();
  else if (a === '--no-faults') faults = false;
  else if (a === '--no-stress') stress = false;
  else if (a === '--concurrency') concurrency = value();
  else if (a === '--details') details = value();
  else if (a === '--json') json = args[++i];
  else if (a === '--quiet') quiet = true;
  else if (a === '--only') only = (args[++i] ?? '').split(',');
  else if (a === '--logs') logDir = args[++i];
  else if (a === '--restart-ms') restartMs = value();
  else if (a === '--help' || a === '-h') usage();
  else usage(`unknown argument ${a}`);
}

if (logDir !== undefined) mkdirSync(logDir, { recursive: true });
const started = Date.now();
const report = await runChaos({
  seed,
  durationMs,
  servers,
  mode,
  faults,
  stress,
  ...(concurrency !== undefined ? { concurrency } : {}),
  ...(only !== undefined ? { only: only as FaultKind[] } : {}),
  ...(logDir !== undefined ? { logDir } : {}),
  ...(restartMs !== undefined ? { restartMs } : {}),
  log: quiet
    ? () => undefined
    : (line) => console.error(`[chaos ${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${line}`),
});
console.log(formatReport(report, details));
if (json !== undefined) writeFileSync(json, JSON.stringify(report, null, 2));
process.exit(report.violations.length > 0 ? 1 : 0);
