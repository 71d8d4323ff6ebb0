/**
 * Many seeds of the fault checker, one after another, and one summary table:
 *
 *   npm run chaos:sweep -- --seeds 1-20 --minutes 3            # single Redis of its own
 *   npm run chaos:sweep -- --seeds 1-10 --minutes 3 --cluster  # a Redis Cluster
 *   npm run chaos:sweep -- --seeds 5,7,23 --seconds 30
 *
 * Prints, per seed: jobs, tokens checked, faults injected and violations by kind, then exits 1 when any
 * seed found a violation (each such seed's whole report is printed as it ends). `--json FILE` writes every
 * report.
 */
import { writeFileSync } from 'node:fs';
import { formatReport, runChaos, type ChaosReport } from './harness.js';

function usage(message?: string): never {
  if (message) console.error(message);
  console.error(
    'usage: npm run chaos:sweep -- --seeds A-B|A,B,C [--minutes M | --seconds S] [--cluster] [--json FILE]',
  );
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
  const args = process.argv.slice(2);
  let seeds: number[] | undefined;
  let durationMs = 60_000;
  let mode: 'single' | 'cluster' = 'single';
  let json: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (): number => {
      const v = Number(args[++i]);
      if (!Number.isFinite(v)) usage(`${a} needs a number`);
      return v;
    };
    if (a === '--seeds') {
      try {
        seeds = parseSeeds(args[++i] ?? '');
      } catch (e) {
        usage((e as Error).message);
      }
    } else if (a === '--minutes') durationMs = Math.round(value() * 60_000);
    else if (a === '--seconds') durationMs = Math.round(value() * 1000);
    else if (a === '--cluster') mode = 'cluster';
    else if (a === '--json') json = args[++i];
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown argument ${a}`);
  }
  if (seeds === undefined || seeds.length === 0) usage('give --seeds');
  const reports: ChaosReport[] = [];
  for (const seed of seeds) {
    const started = Date.now();
    console.error(
      `[sweep] seed ${seed} (${seeds.indexOf(seed) + 1} of ${seeds.length}), ${mode}, ${durationMs / 1000} s`,
    );
    const report = await runChaos({ seed, durationMs, servers: 3, mode, faults: true, stress: true });
    reports.push(report);
    console.error(
      `[sweep] seed ${seed}: ${report.jobs} jobs, ${report.tokensChecked} tokens checked, ${report.violations.length} violations, ${((Date.now() - started) / 1000).toFixed(0)} s`,
    );
    if (report.violations.length > 0) console.error(formatReport(report, 40));
  }
  console.log(summaryTable(reports));
  if (json !== undefined) writeFileSync(json, JSON.stringify(reports, null, 2));
  process.exit(reports.some((r) => r.violations.length > 0) ? 1 : 0);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
