/**
 * `npm run bench:readme`: rewrites the results block of docs/performance.md (between the bench:start and
 * bench:end markers) from bench/results/latest.json, so the performance page always shows the last full run.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Figure, Ratio } from './lib.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const doc = JSON.parse(readFileSync(join(root, 'bench/results/latest.json'), 'utf8')) as {
  date: string;
  machine: { cpus: number; model: string; memoryGiB: number; node: string };
  versions: Record<string, string>;
  sections: Array<{ section: string; figures: Figure[]; notes: string[] }>;
  ratios: Array<Ratio & { section: string }>;
  summary: { met: number; missed: number };
  rerun?: Record<string, string>;
};

const fmt = (n: number): string =>
  Math.abs(n) >= 1e6
    ? `${(n / 1e6).toFixed(2)}M`
    : Math.abs(n) >= 1e4
      ? `${(n / 1e3).toFixed(1)}k`
      : Math.abs(n) >= 100
        ? n.toFixed(0)
        : n.toFixed(Math.abs(n) >= 1 ? 2 : 3);
const shown = [
  /: job-registry$/,
  /bare/,
  /fetch handler/,
  /server CPU per token: /,
  /ReplaySubject\(\)$/,
  /resumable-stream/,
  /emit throughput/,
  /replay of a/,
  /commands per token: job-registry/,
  /CPU of producer \+ reader per 1,000 tokens/,
  /p99 latency emit/,
  /: single Redis$/,
  /: 3-master Redis Cluster, (a replica each|no replicas)$/,
  /replicated cluster vs single Redis$|3 masters with a replica each vs 1/,
  /busiest (node|master)/,
  /^Durable Streams .*, (delivered chunks\/s|p99 append to delivery)$/,
  /^AI SDK chat /,
];

const out: string[] = [];
out.push(
  `Last full run (${doc.date.slice(0, 10)}): ${doc.machine.cpus} x ${doc.machine.model}, ${doc.machine.memoryGiB} GiB, Node ${doc.machine.node}; ` +
    `rxjs ${doc.versions.rxjs}, ioredis ${doc.versions.ioredis}, resumable-stream ${doc.versions['resumable-stream']}. ` +
    `${doc.summary.met} of ${doc.summary.met + doc.summary.missed} ratios met.` +
    (doc.rerun === undefined
      ? ''
      : ` Rerun after a later change: ${Object.keys(doc.rerun).join(', ')} (${Object.values(doc.rerun)[0]!.slice(0, 16).replace('T', ' ')} UTC).`),
  '',
  '| section | ratio | value | min - max | target | met |',
  '|---|---|---:|---:|---:|:---:|',
);
for (const r of doc.ratios)
  out.push(
    `| ${r.section} | ${r.name} | ${fmt(r.value)} | ${r.min === undefined ? '' : `${fmt(r.min)} - ${fmt(r.max!)}`} | ${r.higherIsBetter ? '>=' : '<='} ${fmt(r.target)} | ${r.met ? 'yes' : '**no**'} |`,
  );
out.push(
  '',
  'Some of the figures behind them (median, min - max):',
  '',
  '| section | figure | median | min - max | unit |',
  '|---|---|---:|---:|---|',
);
for (const s of doc.sections)
  for (const f of s.figures)
    if (shown.some((re) => re.test(f.name)))
      out.push(`| ${s.section} | ${f.name} | ${fmt(f.median)} | ${fmt(f.min)} - ${fmt(f.max)} | ${f.unit} |`);
const notes = doc.sections.flatMap((s) =>
  s.notes.filter((n) => /throughput|skipped|failed/.test(n)).map((n) => `- ${s.section}: ${n}`),
);
if (notes.length > 0) out.push('', ...notes);
out.push('', ...capacityModel());

/**
 * How many processes and Redis shards would carry 1 million concurrent streams at 30 tokens/s each,
 * from this run's figures (each figure named below; nothing assumed but one core per process and per
 * Redis shard, run at 70% at most).
 */
function capacityModel(): string[] {
  const all = doc.sections.flatMap((s) => s.figures);
  const find = (re: RegExp): Figure | undefined => all.find((f) => re.test(f.name));
  const sse = find(/^SSE 1000 streams server CPU per token: job-registry node handler$/);
  const heap = find(/^heap per open SSE stream, \d+ held: job-registry$/);
  const client = find(/^\d+ jobs x 1 token .*CPU of producer \+ reader per 1,000 tokens: job-registry/);
  const server = find(/^\d+ jobs x 1 token .*Redis server CPU per 1,000 tokens: job-registry/);
  const master = find(/CPU per 1,000 tokens of the busiest master, 3-master Redis Cluster, a replica each$/);
  if (sse === undefined || heap === undefined || client === undefined || server === undefined) return [];
  const STREAMS = 1_000_000;
  const RATE = 30;
  const BUSY = 0.7;
  const tokens = STREAMS * RATE;
  // Per token: the SSE write (node handler) plus the Redis client work (the producer's write and the
  // reader's XREAD), in µs of one core.
  const perToken = sse.median + client.median;
  const perProcess = (BUSY * 1e6) / perToken;
  const processes = Math.ceil(tokens / perProcess);
  const perShard = (BUSY * 1e6) / server.median;
  const shards = Math.ceil(tokens / perShard);
  const masters = master === undefined ? undefined : Math.ceil(tokens / ((BUSY * 1e6) / master.median));
  const n = (x: number): string => Math.round(x).toLocaleString('en-US');
  return [
    '### Capacity model (from this run)',
    '',
    `For ${n(STREAMS)} concurrent streams at ${RATE} tokens/s (${n(tokens)} tokens/s), each core at most ${BUSY * 100}% busy:`,
    '',
    `- **Per process**: ${fmt(sse.median)} µs of CPU per token to write SSE (node handler, 1,000 streams) plus ${fmt(client.median)} µs for the Redis client work (producer write and reader, realistic load): ${n(perProcess)} tokens/s per core, so ${n(perProcess / RATE)} streams at ${RATE} tokens/s. Held streams cost ${fmt(heap.median)} bytes of heap each: ${n(perProcess / RATE)} streams hold ${fmt((heap.median * perProcess) / RATE / 2 ** 20)} MiB.`,
    `- **Processes**: ${n(processes)} one-core processes (${n(STREAMS / processes)} streams each).`,
    `- **Redis**: ${fmt(server.median)} µs of Redis CPU per token at the realistic load (one token per job per tick): ${n(perShard)} tokens/s per single-threaded shard, so ${n(shards)} shards (masters).` +
      (masters === undefined
        ? ''
        : ` With the batching of the cluster run and a replica per master (${fmt(master!.median)} µs per token on the busiest master), ${n(masters)} masters, and as many replicas.`),
    '- Not modelled: the network, TLS, and the model servers themselves.',
  ];
}

const readme = readFileSync(join(root, 'docs', 'performance.md'), 'utf8');
const start = readme.indexOf('<!-- bench:start -->');
const end = readme.indexOf('<!-- bench:end -->');
if (start < 0 || end < start)
  throw new Error('docs/performance.md has no <!-- bench:start --> ... <!-- bench:end --> block');
writeFileSync(
  join(root, 'docs', 'performance.md'),
  `${readme.slice(0, start)}<!-- bench:start -->\n\n${out.join('\n')}\n\n${readme.slice(end)}`,
);
console.log(`docs/performance.md: results of ${doc.date} written`);
