import type { JobState } from '../core/types.js';
import type { Pipeline, ScriptCommands } from './connection.js';
import { tokenId } from './keys.js';

/** What the writer reports back about writes Redis did not take as sent. */
export interface WriterHooks {
  /** A transition found the job's hash gone: Redis lost the job's data, or it was removed. */
  missing(jobId: string): void;
  /** A transition found the job already ended in Redis, in another state than this one. */
  endedElsewhere(jobId: string, state: string, error: string, errorPrivate: boolean): void;
  /** Redis refused a token write (the stream moved past it, or holds another type): check the stream. */
  tokenRefused(jobId: string, seq: number): void;
  /** A whole batch failed to reach Redis: these jobs' tokens are lost. */
  tokensLost(jobIds: string[], error: unknown): void;
}

/** A token command in a batch: [command index, job id, first seq, tokens]. */
export type Run = [number, string, number, number];

/** One pipeline of writes (a tick's, for one group) and what is needed to read Redis's answers to it. */
export interface Batch {
  pipe: Pipeline & ScriptCommands;
  /** Writes this batch holds (each token counts as one), taken off `pending` once Redis answered. */
  size: number;
  /** Commands in the pipeline: the index of the next one in Redis's answers. */
  commands: number;
  /** Token commands, in pipeline order. */
  runs: Run[];
  transitions: Array<[number, string, JobState]>;
  /** Settled once Redis's answers to this batch's ends were read (or the batch failed). */
  ends: Array<() => void> | undefined;
  tokenJobs: Set<string>;
  /** Token counts to publish, `<job id> <count>` by shard, and when they were taken. */
  progress?: Map<number, string[]>;
  progressAt?: number;
}

/** Tokens per TOKENS command at most: bounds the arguments of one call and the time Redis spends in it. */
export const RUN_MAX = 512;

/** Job counts per progress entry at most: bounds the size of one event stream entry. */
const PROGRESS_MAX = 500;

/** One job's consecutive tokens: one command, put in the pipeline once another write comes. */
export interface OpenRun {
  jobId: string;
  key: string;
  seq: number;
  field: 's' | 't';
  values: string[];
  batch: Batch;
}

/** One command (other than a token run) was put in the batch's pipeline. */
export function addCommand(b: Batch): void {
  b.commands++;
  b.size++;
}

/**
 * Puts a token run in its batch's pipeline: one TOKENS call, or a lone XADD (with the stream's live TTL
 * when it starts the stream). Returns the writes added besides the run's tokens (already counted).
 */
export function putRun(run: OpenRun, replayLimit: number, liveTtl: number): number {
  const b = run.batch;
  b.runs.push([b.commands, run.jobId, run.seq, run.values.length]);
  b.commands++;
  if (run.values.length > 1) {
    const limit = replayLimit === Infinity ? '' : replayLimit;
    b.pipe.jrTokens(run.key, run.seq, run.field, limit, liveTtl, ...run.values);
    return 0;
  }
  if (replayLimit === Infinity) b.pipe.xadd(run.key, tokenId(run.seq), run.field, run.values[0]!);
  else b.pipe.xadd(run.key, 'MAXLEN', replayLimit, tokenId(run.seq), run.field, run.values[0]!);
  if (run.seq !== 0) return 0;
  b.pipe.pexpire(run.key, liveTtl);
  addCommand(b);
  return 1;
}

/**
 * Puts the batch's token counts in its pipeline: one progress entry per shard (`<job id> <count>`
 * joined by commas, at most PROGRESS_MAX each). Returns the writes added.
 */
export function putProgress(
  b: Batch,
  events: (shard: number) => string,
  maxLen: number,
  origin: string,
): number {
  let added = 0;
  for (const [shard, all] of b.progress ?? [])
    for (let i = 0; i < all.length; i += PROGRESS_MAX) {
      const counts = all.slice(i, i + PROGRESS_MAX).join(',');
      b.pipe.xadd(
        events(shard),
        'MAXLEN',
        '~',
        maxLen,
        '*',
        'type',
        'progress',
        'jobs',
        counts,
        'at',
        String(b.progressAt),
        'origin',
        origin,
      );
      addCommand(b);
      added++;
    }
  return added;
}

/** An empty batch over a fresh pipeline. */
export function newBatch(pipe: Pipeline & ScriptCommands): Batch {
  return { pipe, size: 0, commands: 0, runs: [], transitions: [], tokenJobs: new Set(), ends: undefined };
}

/**
 * Reads Redis's answers to a sent batch: transitions that found their job gone or ended elsewhere, token
 * commands Redis refused (all of a run, or part of it), and any other failed command (`failed`).
 */
export function readAnswers(
  b: Batch,
  results: Array<[Error | null, unknown]>,
  hooks: WriterHooks,
  failed: (error: Error) => void,
): void {
  for (const [index, jobId, to] of b.transitions) {
    const [err, reply] = results[index] ?? [null, null];
    if (err !== null) continue; // reported below with the other command errors
    const [code, state, error, priv] = reply as [string, string?, string?, string?];
    if (code === 'missing') hooks.missing(jobId);
    else if (code === 'ended' && state !== to) hooks.endedElsewhere(jobId, state!, error ?? '', priv === '1');
  }
  let refused: Set<string> | undefined;
  const refuse = (run: Run): void => {
    if ((refused ??= new Set()).has(run[1])) return;
    refused.add(run[1]);
    // The run's last seq: the stream's own last entry then tells a resend of a stored run (the first
    // entry refused, every one already there) from tokens Redis never took.
    hooks.tokenRefused(run[1], run[2] + run[3] - 1);
  };
  for (const run of b.runs) {
    const [err, reply] = results[run[0]] ?? [null, null];
    if (err === null && run[3] > 1 && Array.isArray(reply)) refuse(run);
  }
  for (let i = 0; i < results.length; i++) {
    const err = results[i]![0];
    if (err === null) continue;
    const run = runAt(b.runs, i);
    if (run === undefined) failed(err);
    else refuse(run);
  }
}

/** The token command at a command index, if it is one (runs are in index order). */
function runAt(runs: Run[], index: number): Run | undefined {
  let lo = 0;
  let hi = runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const at = runs[mid]![0];
    if (at === index) return runs[mid];
    if (at < index) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}
