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
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseFlags, runOptions, SHARED_USAGE } from './args.js';
import { formatReport, runChaos } from './harness.js';

function usage(message?: string): never {
  if (message) console.error(message);
  console.error(`usage: npm run chaos -- [--seed N] ${SHARED_USAGE} [--details N] [--quiet]`);
  process.exit(2);
}

let seed = 1;
let details = 20;
let quiet = false;
const flags = parseFlags(process.argv.slice(2), usage, (flag, value) => {
  if (flag === '--seed') seed = value();
  else if (flag === '--details') details = value();
  else if (flag === '--quiet') quiet = true;
  else return false;
  return true;
});

if (flags.logDir !== undefined) mkdirSync(flags.logDir, { recursive: true });
const started = Date.now();
const report = await runChaos({
  seed,
  ...runOptions(flags),
  log: quiet
    ? () => undefined
    : (line) => console.error(`[chaos ${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${line}`),
});
console.log(formatReport(report, details));
if (flags.json !== undefined) writeFileSync(flags.json, JSON.stringify(report, null, 2));
process.exit(report.violations.length > 0 ? 1 : 0);
