/**
 * Messages between a benchmark section and the peer processes it forks (producers, readers): the
 * section waits for a message type from a child; a peer sends messages and waits for the section's.
 */
import type { ChildProcess } from 'node:child_process';

/** Resolves with the child's next message of `type`; rejects on its `error` message or its exit. */
export function waitFor<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const on = (m: { type: string; message?: string }): void => {
      if (m.type === 'error') reject(new Error(m.message));
      if (m.type === type) {
        child.off('message', on);
        resolve(m as T);
      }
    };
    child.on('message', on);
    // A peer that dies (or is killed by the run's deadline) fails what waited on it, instead of hanging.
    child.once('exit', (code, signal) =>
      reject(new Error(`peer exited (${signal ?? code}) before '${type}'`)),
    );
  });
}

/** In a peer: sends a message to the section. */
export const send = (m: object): void => void process.send!(m);

/** In a peer: resolves with the section's next message of `type`. */
export function once<T>(type: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { type: string }): void => {
      if (m.type === type) {
        process.off('message', on);
        resolve(m as T);
      }
    };
    process.on('message', on);
  });
}

/** A peer's entry point: runs its role, reports a failure to the section (then exits 1), says it is up. */
export function runPeer(main: () => Promise<void>): void {
  // Exits cleanly when the section kills it, so a CPU profile (`BENCH_PEER_PROF`) is written.
  process.once('SIGTERM', () => process.exit(0));
  main().catch((e: unknown) => {
    send({ type: 'error', message: (e as Error).stack ?? String(e) });
    process.exit(1);
  });
  send({ type: 'up' });
}

/**
 * A peer's Node options: `base`, plus `--cpu-prof` into the folder `BENCH_PEER_PROF` names when it is set
 * (one `.cpuprofile` per peer process, written when the section ends it).
 */
export function peerArgs(base: string[]): string[] {
  const dir = process.env.BENCH_PEER_PROF;
  return dir ? [...base, '--cpu-prof', `--cpu-prof-dir=${dir}`] : base;
}
