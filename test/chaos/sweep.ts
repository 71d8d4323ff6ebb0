/**
 * Many seeds of the fault checker, one after another, and one summary table:
 *
 *   npm run chaos:sweep -- --seeds 1-20 --minutes 3            # single Redis of its own
 *   npm run chaos:sweep -- --seeds 1-10 --minutes 3 --cluster  # a Redis Cluster
 *   npm run chaos:sweep -- --seeds 5,7,23 --seconds 30
 *
 * Prints, per seed: jobs, tokens checked, faults injected and violations by kind, then exits 1 when any
 * seed found a violation (each such seed's whole report is printed as it ends). Takes the flags of
 * `npm run chaos` too: `--json FILE` writes every report, `--logs DIR` keeps each seed's server logs in
 * `DIR/seed-N`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseFlags, runOptions, SHARED_USAGE } from './args.js';
import { formatReport, runChaos, type ChaosReport } from './harness.js';

function usage(message?: string): never {
  if (message) console.error(message);
  console.error(`usage: npm run chaos:sweep -- --seeds A-B|A,B,C ${SHARED_USAGE}`);
  process.exit(2);
}

/** `1-20`, `5,7,23` or a mix: the seeds, in order, each once. */
export function parseSeeds(text: string): number[] {
  const out: number[] = [];
  for (const part of text.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (m === null) throw new Error(`bad seed list '${text}': use A-B or A,B,C`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) throw new Error(`bad seed range '${part}': the end is before the start`);
    for (let s = from; s <= to; s++) if (!out.includes(s)) out.push(s);
  }
  return out;
}

/** One row per report: seed, jobs, tokens checked, faults, violations by kind. */
export function summaryTable(reports: readonly ChaosReport[]): string {
  const rows = reports.map((r) => {
    const byKind = new Map<string, number>();
    for (const v of r.violations) byKind.set(v.kind, (byKind.get(v.kind) ?? 0) + 1);
    return [
      String(r.seed),
      String(r.jobs),
      String(r.tokensChecked),
      String(Object.values(r.faults).reduce((a, b) => a + b, 0)),
      byKind.size === 0 ? '0' : [...byKind].map(([k, n]) => `${k} ${n}`).join(', '),
    ];
  });
  const head = ['seed', 'jobs', 'tokens checked', 'faults', 'violations'];
  const total = [
    'all',
    String(reports.reduce((a, r) => a + r.jobs, 0)),
    String(reports.reduce((a, r) => a + r.tokensChecked, 0)),
    String(reports.reduce((a, r) => a + Object.values(r.faults).reduce((x, y) => x + y, 0), 0)),
    String(reports.reduce((a, r) => a + r.violations.length, 0)),
  ];
  const all = [head, ...rows, total];
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const line = (r: string[]): string => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [
    line(head),
    `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`,
    ...rows.map(line),
    line(total),
  ].join('\n');
}

async function main(): Promise<void> {
  let seeds: number[] | undefined;
  const flags = parseFlags(process.argv.slice(2), usage, (flag, _value, text) => {
    if (flag !== '--seeds') return false;
    try {
      seeds = parseSeeds(text());
    } catch (e) {
      usage((e as Error).message);
    }
    return true;
  });
  if (seeds === undefined || seeds.length === 0) usage('give --seeds');
  const reports: ChaosReport[] = [];
  for (const seed of seeds) {
    const started = Date.now();
    console.error(
      `[sweep] seed ${seed} (${seeds.indexOf(seed) + 1} of ${seeds.length}), ${flags.mode}, ${flags.durationMs / 1000} s`,
    );
    const logDir = flags.logDir === undefined ? undefined : join(flags.logDir, `seed-${seed}`);
    if (logDir !== undefined) mkdirSync(logDir, { recursive: true });
    const report = await runChaos({ seed, ...runOptions(flags, logDir) });
    reports.push(report);
    console.error(
      `[sweep] seed ${seed}: ${report.jobs} jobs, ${report.tokensChecked} tokens checked, ${report.violations.length} violations, ${((Date.now() - started) / 1000).toFixed(0)} s`,
    );
    if (report.violations.length > 0) console.error(formatReport(report, 40));
  }
  console.log(summaryTable(reports));
  if (flags.json !== undefined) writeFileSync(flags.json, JSON.stringify(reports, null, 2));
  process.exit(reports.some((r) => r.violations.length > 0) ? 1 : 0);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
