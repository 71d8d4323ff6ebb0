/**
 * The command-line flags `npm run chaos` and `npm run chaos:sweep` share, parsed once: how long, which
 * Redis, which faults, and where the report and the servers' logs go.
 */
import type { FaultKind } from './harness.js';

export interface RunFlags {
  durationMs: number;
  mode: 'single' | 'cluster';
  servers: number;
  faults: boolean;
  stress: boolean;
  concurrency?: number;
  only?: FaultKind[];
  logDir?: string;
  restartMs?: number;
  json?: string;
}

export const SHARED_USAGE =
  '[--minutes M | --seconds S] [--cluster] [--servers N] [--no-faults] [--no-stress] [--concurrency N] [--json FILE] [--logs DIR] [--only KIND,KIND] [--restart-ms MS]';

/**
 * Parses `args`; a flag not shared goes to `own(flag, value)`, which takes its value with `value()` (a
 * number) or `text()`, and answers false for a flag it does not know either (then `usage` is called).
 */
export function parseFlags(
  args: readonly string[],
  usage: (message?: string) => never,
  own: (flag: string, value: () => number, text: () => string) => boolean = () => false,
): RunFlags {
  const flags: RunFlags = { durationMs: 60_000, mode: 'single', servers: 3, faults: true, stress: true };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const text = (): string => {
      const v = args[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    const value = (): number => {
      const v = Number(text());
      if (!Number.isFinite(v)) usage(`${a} needs a number`);
      return v;
    };
    if (a === '--minutes') flags.durationMs = Math.round(value() * 60_000);
    else if (a === '--seconds') flags.durationMs = Math.round(value() * 1000);
    else if (a === '--cluster') flags.mode = 'cluster';
    else if (a === '--servers') flags.servers = value();
    else if (a === '--no-faults') flags.faults = false;
    else if (a === '--no-stress') flags.stress = false;
    else if (a === '--concurrency') flags.concurrency = value();
    else if (a === '--json') flags.json = text();
    else if (a === '--logs') flags.logDir = text();
    else if (a === '--only') flags.only = text().split(',') as FaultKind[];
    else if (a === '--restart-ms') flags.restartMs = value();
    else if (a === '--help' || a === '-h') usage();
    else if (!own(a, value, text)) usage(`unknown argument ${a}`);
  }
  return flags;
}

/** The options of `runChaos` that the flags set (everything but the seed and the log line). */
export function runOptions(flags: RunFlags, logDir = flags.logDir) {
  return {
    durationMs: flags.durationMs,
    servers: flags.servers,
    mode: flags.mode,
    faults: flags.faults,
    stress: flags.stress,
    ...(flags.concurrency !== undefined ? { concurrency: flags.concurrency } : {}),
    ...(flags.only !== undefined ? { only: flags.only } : {}),
    ...(logDir !== undefined ? { logDir } : {}),
    ...(flags.restartMs !== undefined ? { restartMs: flags.restartMs } : {}),
  };
}
