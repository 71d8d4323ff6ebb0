/**
 * `npm run bench [-- --quick] [-- --only=core,sse [--merge]]`: runs every section in a fresh process,
 * collects medians and ratios, and writes bench/results/latest.json, latest.md and ratios.svg. A partial
 * run (`--only`) writes partial.*; with `--merge` its sections replace those of latest.json instead (for
 * rerunning the sections a change touched), and latest.json says which sections were rerun when.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Ratio, SectionResult } from './lib.js';
import { renderChart } from './chart.js';

const here = dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');
const onlyArg = process.argv.find((a) => a.startsWith('--only='));
const only = onlyArg === undefined ? undefined : onlyArg.slice(7).split(',');
const merge = process.argv.includes('--merge');
if (merge && (only === undefined || quick)) {
  console.error('bench: --merge goes with --only=<sections> of a full run');
  process.exit(2);
}
const SECTIONS = [
  'core',
  'memory',
  'scaling',
  'sse',
  'responses',
  'connections',
  'dashboard',
  'durable',
  'redis',
  'redis-realistic',
  'redis-cluster',
  'chat',
].filter((s) => only === undefined || only.includes(s));

function runSection(name: string): Promise<SectionResult> {
  return new Promise((resolve, reject) => {
    const args = [
      '--expose-gc',
      '--max-old-space-size=8192',
      '--import',
      'tsx',
      join(here, 'sections', `${name}.ts`),
      ...(quick ? ['--quick'] : []),
    ];
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('@@RESULT '));
      if (code !== 0 || line === undefined)
        return reject(new Error(`bench section ${name} failed (exit ${code}):\n${out.slice(-2000)}`));
      resolve(JSON.parse(line.slice(9)) as SectionResult);
    });
  });
}

function fmt(n: number): string {
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (Math.abs(n) >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 1) return n.toFixed(2);
  return n.toFixed(3);
}

const started = Date.now();
const results: SectionResult[] = [];
for (const name of SECTIONS) {
  const t0 = Date.now();
  process.stdout.write(`bench: ${name} ... `);
  const r = await runSection(name);
  results.push(r);
  process.stdout.write(`${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}

const pkg = JSON.parse(readFileSync(join(here, '../package.json'), 'utf8')) as { version: string };
const version = (p: string): string => {
  try {
    return (
      JSON.parse(readFileSync(join(here, '../node_modules', p, 'package.json'), 'utf8')) as {
        version: string;
      }
    ).version;
  } catch {
    return 'absent';
  }
};
interface Doc {
  date: string;
  mode: string;
  seconds: number;
  machine: { cpus: number; model: string; memoryGiB: number; node: string; platform: string };
  versions: Record<string, string>;
  sections: SectionResult[];
  ratios: Array<Ratio & { section: string }>;
  summary: { met: number; missed: number };
  /** Sections rerun into this document by `--merge`, with when. */
  rerun?: Record<string, string>;
}

const ratiosOf = (sections: SectionResult[]): Array<Ratio & { section: string }> =>
  sections.flatMap((r) => r.ratios.map((x) => ({ ...x, section: r.section })));
const summaryOf = (ratios: Ratio[]): Doc['summary'] => ({
  met: ratios.filter((r) => r.met).length,
  missed: ratios.filter((r) => !r.met).length,
});
const ratios = ratiosOf(results);
let doc: Doc = {
  date: new Date().toISOString(),
  mode: quick ? 'quick' : 'full',
  seconds: Math.round((Date.now() - started) / 1000),
  machine: {
    cpus: cpus().length,
    model: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: process.platform,
  },
  versions: {
    'job-registry': pkg.version,
    rxjs: version('rxjs'),
    ioredis: version('ioredis'),
    'resumable-stream': version('resumable-stream'),
  },
  sections: results,
  ratios,
  summary: summaryOf(ratios),
};

const outDir = join(here, 'results');
if (merge) {
  const full = JSON.parse(readFileSync(join(outDir, 'latest.json'), 'utf8')) as Doc;
  const fresh = new Map(results.map((r) => [r.section, r]));
  const sections = full.sections.map((s) => fresh.get(s.section) ?? s);
  for (const r of results) if (!full.sections.some((s) => s.section === r.section)) sections.push(r);
  const merged = ratiosOf(sections);
  const rerun = { ...full.rerun };
  for (const r of results) rerun[r.section] = doc.date;
  doc = { ...full, sections, ratios: merged, summary: summaryOf(merged), rerun };
}

const lines: string[] = [];
lines.push(`# Benchmark results (${doc.mode})`, '');
lines.push(
  `${doc.date}, ${doc.machine.cpus} x ${doc.machine.model}, ${doc.machine.memoryGiB} GiB, Node ${doc.machine.node}; rxjs ${doc.versions.rxjs}, ioredis ${doc.versions.ioredis}, resumable-stream ${doc.versions['resumable-stream']}.`,
  '',
);
if (doc.rerun !== undefined)
  lines.push(
    `Rerun since on the same machine: ${Object.entries(doc.rerun)
      .map(([section, at]) => `${section} (${at})`)
      .join(', ')}.`,
    '',
  );
lines.push(
  '## Ratios against their targets',
  '',
  '| section | ratio | value | min - max | target | met |',
  '|---|---|---:|---:|---:|:---:|',
);
for (const r of doc.ratios)
  lines.push(
    `| ${r.section} | ${r.name} | ${fmt(r.value)} | ${r.min === undefined ? '' : `${fmt(r.min)} - ${fmt(r.max!)}`} | ${r.higherIsBetter ? '>=' : '<='} ${fmt(r.target)} | ${r.met ? 'yes' : '**no**'} |`,
  );
lines.push(
  '',
  '## Figures (median, min-max)',
  '',
  '| section | figure | median | min - max | unit |',
  '|---|---|---:|---:|---|',
);
for (const s of doc.sections)
  for (const f of s.figures)
    lines.push(`| ${s.section} | ${f.name} | ${fmt(f.median)} | ${fmt(f.min)} - ${fmt(f.max)} | ${f.unit} |`);
const notes = doc.sections.flatMap((s) => s.notes.map((n) => `- ${s.section}: ${n}`));
if (notes.length > 0) lines.push('', '## Notes', '', ...notes);
const table = lines.join('\n') + '\n';

mkdirSync(outDir, { recursive: true });
// A partial run (--only) never overwrites the full results, unless it is merged into them.
const base = quick ? 'quick' : only !== undefined && !merge ? 'partial' : 'latest';
writeFileSync(join(outDir, `${base}.json`), JSON.stringify(doc, null, 2) + '\n');
writeFileSync(join(outDir, `${base}.md`), table);
writeFileSync(
  join(outDir, `${base === 'latest' ? 'ratios' : `${base}-ratios`}.svg`),
  renderChart(
    doc.ratios,
    `${doc.machine.cpus} x ${doc.machine.model}, Node ${doc.machine.node}, ${doc.mode} run`,
  ),
);
console.log('');
console.log(table);
console.log(
  `bench: ${doc.summary.met} ratios met, ${doc.summary.missed} missed; written to bench/results/${base}.{json,md}`,
);
