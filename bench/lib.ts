/** Helpers shared by the benchmark sections. Each section runs in a fresh process and prints one JSON line. */
import { Redis } from 'ioredis';

export const QUICK = process.argv.includes('--quick');

/** One measured figure: median and spread over the repetitions. */
export interface Figure {
  name: string;
  unit: string;
  median: number;
  min: number;
  max: number;
  runs: number[];
}

/** A ratio held against its target (met when `higherIsBetter ? value >= target : value <= target`). */
export interface Ratio {
  name: string;
  value: number;
  target: number;
  higherIsBetter: boolean;
  met: boolean;
  baseline: string;
  /** The lowest and highest of the per-run ratios (absent in results written before they were kept). */
  min?: number;
  max?: number;
  note?: string;
}

export interface SectionResult {
  section: string;
  figures: Figure[];
  ratios: Ratio[];
  notes: string[];
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function figure(name: string, unit: string, runs: number[]): Figure {
  return { name, unit, median: median(runs), min: Math.min(...runs), max: Math.max(...runs), runs };
}

/** The median of per-repetition ratios a/b: pairs measured side by side, so drift cancels out. */
export function ratio(
  name: string,
  pairs: number[],
  target: number,
  higherIsBetter: boolean,
  baseline: string,
  note?: string,
): Ratio {
  const value = median(pairs);
  return {
    name,
    value,
    target,
    higherIsBetter,
    met: higherIsBetter ? value >= target : value <= target,
    baseline,
    min: Math.min(...pairs),
    max: Math.max(...pairs),
    ...(note ? { note } : {}),
  };
}

/** Nanoseconds per operation of `fn(n)`, which runs n operations. */
export function nsPerOp(n: number, fn: (n: number) => void): number {
  const t = process.hrtime.bigint();
  fn(n);
  return Number(process.hrtime.bigint() - t) / n;
}

export function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g === undefined) throw new Error('run with --expose-gc');
  g();
  g();
}

export function heapUsed(): number {
  gc();
  return process.memoryUsage().heapUsed;
}

/**
 * The heap after GC once the event loop has had turns in between: V8 finalizes the wrappers of closed
 * handles (sockets, HTTP parsers) in tasks it posts after a GC, so a synchronous `heapUsed()` still
 * counts every socket closed just before.
 */
export async function settledHeapUsed(): Promise<number> {
  for (let i = 0; i < 2; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
  return heapUsed();
}

/** Prints the section's result as the last line of stdout, for the runner. */
export function report(result: SectionResult): void {
  process.stdout.write(`\n@@RESULT ${JSON.stringify(result)}\n`);
}

/**
 * The admin connection of a Redis section. Without Redis the section reports itself skipped and the
 * process exits, except in CI, where Redis is required.
 */
export async function redisAdminOrSkip(url: string, section: string, what: string): Promise<Redis> {
  const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  admin.on('error', () => undefined); // a failed connect is handled below; later errors fail commands
  try {
    await admin.connect();
  } catch (e) {
    if (process.env.CI === 'true') throw new Error(`Redis is required in CI: ${url}: ${String(e)}`);
    console.warn(`SKIPPING the ${what} benchmark: no Redis at ${url}`);
    report({ section, figures: [], ratios: [], notes: [`skipped: no Redis at ${url}`] });
    process.exit(0);
  }
  return admin;
}
