import { spawn, type ChildProcess } from 'node:child_process';

/** An example server running in a child process. */
export interface ServerProcess {
  url: string;
  child: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Spawns `examples/inference-server.ts` on port 0 and resolves with its URL once it logs it. */
export function spawnServer(env: Record<string, string>): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/inference-server.ts'], {
    cwd: process.cwd(),
    // In memory unless the test names a Redis: CI exports REDIS_CLUSTER_NODES for the cluster tests.
    env: { ...process.env, NODE_OPTIONS: '', PORT: '0', HOST: '127.0.0.1', REDIS_CLUSTER_NODES: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 20_000);
    const onData = (): void => {
      const m = /on (http:\/\/[^\s/]+)\//.exec(out);
      if (m === null) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      resolve({
        url: m[1]!,
        child,
        output: () => out,
        stop: (signal = 'SIGTERM') =>
          new Promise((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done(child.exitCode);
            child.once('exit', (code) => done(code));
            child.kill(signal);
          }),
      });
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${out}`));
    });
  });
}

/**
 * Runs a TypeScript file in a process of its own until it exits, and resolves with the JSON report it
 * printed last (a line starting with `{`). Rejects when it exits with another code than 0, prints no
 * report, or is still running after `deadlineMs` (then it is killed).
 */
export function runReport<T>(
  script: string,
  env: Record<string, string> = {},
  deadlineMs = 20_000,
): Promise<T> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: process.cwd(),
    env: { ...process.env, NODE_OPTIONS: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} did not exit within ${deadlineMs} ms: ${out}`));
    }, deadlineMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      const report = out
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .at(-1);
      if (code !== 0 || report === undefined) reject(new Error(`${script} exited with ${code}: ${out}`));
      else resolve(JSON.parse(report) as T);
    });
  });
}
