/**
 * Example inference servers as child processes, in slots: a slot keeps its configuration when its process
 * is killed and replaced. Every line a process prints is scanned for uncaught exceptions and warnings, and
 * every exit we did not cause is recorded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';

/** What the harness sees wrong in a server's output or exit. */
export interface ServerProblem {
  kind: 'uncaught' | 'server_exit' | 'server_warning' | 'setup';
  proc: string;
  at: number;
  detail: string;
}

export interface ServerProc {
  /** `s<slot>#<generation>`, e.g. `s1#2` for the second process of slot 1. */
  name: string;
  slot: number;
  pid: number;
  url: string;
  startedAt: number;
  /** True between a successful start and a signal or exit. */
  up: boolean;
  /** The signal we sent, when we sent one. */
  signalled?: { signal: NodeJS.Signals; at: number };
  exited?: { code: number | null; signal: NodeJS.Signals | null; at: number };
  /** The backend's owner id (a uuid), learnt from a job hash this process wrote. */
  owner?: string;
  /** Lines logged by the process with `job-registry:` (write failures and the like); counted, not judged. */
  loggedErrors: number;
  /**
   * When the process had no working connection to Redis, from its own log: from the first "a connection
   * to Redis failed" to the next "connection works again" (it can neither store an end nor learn one).
   */
  cutOff: Array<{ from: number; to: number }>;
  cutOffSince?: number | undefined;
  /**
   * When its lease renewal failed or got no answer, from its own log, to "lease renewal works again":
   * other processes may take it for dead then and end its jobs.
   */
  leaseOut: Array<{ from: number; to: number }>;
  leaseOutSince?: number | undefined;
  /** The last ~64 KiB of output, for reports. */
  tail(): string;
  child: ChildProcess;
  exitPromise: Promise<void>;
}

export interface SlotConfig {
  replayLimit?: number;
  blockMs: number;
}

const TAIL_BYTES = 64 * 1024;

/** Lines that mean a process hit something it did not handle. */
const UNCAUGHT =
  /Uncaught|uncaughtException|UnhandledPromiseRejection|unhandledRejection|^Node\.js v\d+|ERR_UNHANDLED|FATAL ERROR|Segmentation fault|Maximum call stack/;
/** Node process warnings other than the experimental-feature notice. */
const WARNING = /\(node:\d+\) (?!ExperimentalWarning)\w*Warning/;

export interface SpawnOptions {
  slot: number;
  generation: number;
  env: Record<string, string>;
  cwd: string;
  startTimeoutMs: number;
  onProblem: (p: ServerProblem) => void;
  /** Must the startup line name Redis (not "in memory")? */
  expectShared: boolean;
  /** Also write everything the process prints to this file. */
  logFile?: string;
}

/** Spawns `examples/inference-server.ts` on port 0; resolves once it printed its URL. */
export function spawnServerProc(opts: SpawnOptions): Promise<ServerProc> {
  const name = `s${opts.slot}#${opts.generation}`;
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/inference-server.ts'], {
    cwd: opts.cwd,
    env: { ...process.env, NODE_OPTIONS: '', PORT: '0', HOST: '127.0.0.1', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  const logStream = opts.logFile !== undefined ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
  let partial = { out: '', err: '' };
  let exitResolve!: () => void;
  const exitPromise = new Promise<void>((r) => (exitResolve = r));
  const proc: ServerProc = {
    name,
    slot: opts.slot,
    pid: child.pid ?? -1,
    url: '',
    startedAt: 0,
    up: false,
    loggedErrors: 0,
    cutOff: [],
    leaseOut: [],
    tail: () => tail,
    child,
    exitPromise,
  };
  const onLine = (line: string): void => {
    if (UNCAUGHT.test(line))
      opts.onProblem({ kind: 'uncaught', proc: name, at: Date.now(), detail: line.slice(0, 300) });
    else if (WARNING.test(line))
      opts.onProblem({ kind: 'server_warning', proc: name, at: Date.now(), detail: line.slice(0, 300) });
    else if (line.includes('job-registry:')) {
      proc.loggedErrors++;
      if (line.includes('job-registry: a connection to Redis failed')) proc.cutOffSince ??= Date.now();
      else if (line.includes('job-registry: connection works again') && proc.cutOffSince !== undefined) {
        proc.cutOff.push({ from: proc.cutOffSince, to: Date.now() });
        proc.cutOffSince = undefined;
      } else if (line.includes("job-registry: renewing this process's lease"))
        proc.leaseOutSince ??= Date.now();
      else if (line.includes('job-registry: lease renewal works again') && proc.leaseOutSince !== undefined) {
        proc.leaseOut.push({ from: proc.leaseOutSince, to: Date.now() });
        proc.leaseOutSince = undefined;
      }
    }
  };
  const feed = (which: 'out' | 'err', chunk: Buffer): void => {
    const text = chunk.toString('utf8');
    logStream?.write(text);
    tail = (tail + text).slice(-TAIL_BYTES);
    const lines = (partial[which] + text).split('\n');
    partial[which] = lines.pop() ?? '';
    if (partial[which].length > 10_000) partial[which] = partial[which].slice(-10_000);
    for (const line of lines) onLine(line);
  };
  child.stdout!.on('data', (c: Buffer) => feed('out', c));
  child.stderr!.on('data', (c: Buffer) => feed('err', c));
  child.once('exit', (code, signal) => {
    for (const which of ['out', 'err'] as const) if (partial[which] !== '') onLine(partial[which]);
    partial = { out: '', err: '' };
    proc.up = false;
    proc.exited = { code, signal, at: Date.now() };
    if (proc.cutOffSince !== undefined) proc.cutOff.push({ from: proc.cutOffSince, to: proc.exited.at });
    proc.cutOffSince = undefined;
    if (proc.leaseOutSince !== undefined)
      proc.leaseOut.push({ from: proc.leaseOutSince, to: proc.exited.at });
    proc.leaseOutSince = undefined;
    logStream?.end(`\n[harness] exited with code ${code} signal ${signal}\n`);
    const expected =
      proc.signalled !== undefined &&
      (proc.signalled.signal === 'SIGKILL' ? signal === 'SIGKILL' : code === 0 || signal === 'SIGKILL');
    if (!expected && proc.startedAt > 0)
      opts.onProblem({
        kind: 'server_exit',
        proc: name,
        at: Date.now(),
        detail:
          `exited with code ${code} signal ${signal}` +
          (proc.signalled ? ` after our ${proc.signalled.signal}` : ' without a signal from the harness') +
          `; last output: ${lastLines(tail, 6)}`,
      });
    exitResolve();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`server ${name} did not start within ${opts.startTimeoutMs} ms: ${lastLines(tail, 10)}`),
      );
    }, opts.startTimeoutMs);
    const onData = (): void => {
      const m = /job-registry example server on (http:\/\/[^\s/]+)\/ \(([^)]*)\)/.exec(tail);
      if (m === null) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      proc.url = m[1]!;
      proc.startedAt = Date.now();
      proc.up = true;
      if (opts.expectShared && /in memory/.test(m[2]!))
        opts.onProblem({
          kind: 'setup',
          proc: name,
          at: Date.now(),
          detail: `the server ignored the Redis settings and runs in memory ("${m[0]}")`,
        });
      resolve(proc);
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (!proc.up && proc.startedAt === 0)
        reject(new Error(`server ${name} exited with ${code} before it started: ${lastLines(tail, 10)}`));
    });
  });
}

/** Sends a signal and resolves when the process has exited (SIGKILL after `timeoutMs`). */
export async function signalProc(
  proc: ServerProc,
  signal: NodeJS.Signals,
  timeoutMs = 10_000,
): Promise<'exited' | 'forced'> {
  proc.up = false;
  if (proc.exited !== undefined) return 'exited';
  proc.signalled ??= { signal, at: Date.now() };
  proc.child.kill(signal);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = await Promise.race([
    proc.exitPromise.then(() => false),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs))),
  ]);
  clearTimeout(timer);
  if (!timedOut) return 'exited';
  proc.signalled = { signal: 'SIGKILL', at: Date.now() };
  proc.child.kill('SIGKILL');
  await Promise.race([proc.exitPromise, new Promise((r) => setTimeout(r, 5000))]);
  return 'forced';
}

export function lastLines(text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join(' | ').slice(-1500);
}
