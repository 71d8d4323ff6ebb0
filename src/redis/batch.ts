import type { JobState } from '../core/types.js';
import type { Pipeline, ScriptCommands } from './connection.js';
import { tokenId } from './keys.js';

/** What the writer reports back about writes Redis did not take as sent. */
export interface WriterHooks {
  /** A transition found the job's hash gone: Redis lost the job's data, or it was removed. */
  missing(jobId: string): void;
  /** A transition found the job already ended in Redis, in another state than this one. */
  endedElsewhere(jobId: string, state: string, error: string, errorPrivate: boolean): void;
  /**
   * Redis refused a run of a job's tokens, seqs `first` to `last` (the stream moved past it, or holds
   * another type): check the stream.
   */
  tokenRefused(jobId: string, first: number, last: number): void;
  /** A whole batch failed to reach Redis: these jobs' tokens are lost. */
  tokensLost(jobIds: string[], error: unknown): void;
  /** Redis answered the create of a keyed job (see CREATE): whether it got its key. */
  claimAnswered(jobId: string, key: string, reply: unknown): void;
}

/**
 * A token run in a batch: [command index, job id, first seq, tokens, position]. The position is the
 * run's place in a TOKEN_RUNS command, -1 when the run is a command of its own (TOKENS or XADD).
 */
export type Run = [number, string, number, number, number];

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
  /** Creates of keyed jobs: [command index, job id, key]. */
  claims: Array<[number, string, string]> | undefined;
  /**
   * This batch's ends and restores: [command index, resolver], called once Redis's answers were read
   * (`true` when that command's own answer was not an error), or with `false` when the batch failed.
   */
  ends: Array<[number, (stored: boolean) => void]> | undefined;
  tokenJobs: Set<string>;
  /** Token runs waiting to go in the pipeline, by shard, as one command per shard; and their jobs. */
  held: Map<number, OpenRun[]>;
  heldJobs: Set<string>;
  /** Tokens of the runs held for each shard. */
  heldTokens: Map<number, number>;
  /** Token counts to publish, `<job id> <count>` by shard, and when they were taken. */
  progress?: Map<number, string[]>;
  progressAt?: number;
}

/** Tokens per TOKENS command at most: bounds the arguments of one call and the time Redis spends in it. */
export const RUN_MAX = 512;

/** Tokens per TOKEN_RUNS command at most: bounds the time Redis spends in one call. */
export const HELD_MAX = 1024;

/** Job counts per progress entry at most: bounds the size of one event stream entry. */
const PROGRESS_MAX = 500;

/** One job's consecutive tokens: one command, put in the pipeline once another write comes. */
export interface OpenRun {
  jobId: string;
  shard: number;
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
  b.runs.push([b.commands, run.jobId, run.seq, run.values.length, -1]);
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
 * Holds a closed token run until its shard's runs go in the pipeline (`putHeld`). Returns the writes
 * added to the pipeline: a shard whose held runs reach HELD_MAX tokens goes at once.
 */
export function holdRun(run: OpenRun, replayLimit: number, liveTtl: number): number {
  const b = run.batch;
  let list = b.held.get(run.shard);
  if (list === undefined) b.held.set(run.shard, (list = []));
  list.push(run);
  b.heldJobs.add(run.jobId);
  const tokens = (b.heldTokens.get(run.shard) ?? 0) + run.values.length;
  b.heldTokens.set(run.shard, tokens);
  return tokens >= HELD_MAX ? putHeld(b, run.shard, replayLimit, liveTtl) : 0;
}

/**
 * Puts the runs held for a shard in the pipeline (see putRuns). Returns the writes added besides the
 * runs' tokens.
 */
export function putHeld(b: Batch, shard: number, replayLimit: number, liveTtl: number): number {
  const list = b.held.get(shard);
  if (list === undefined) return 0;
  b.held.delete(shard);
  b.heldTokens.delete(shard);
  for (const run of list) b.heldJobs.delete(run.jobId);
  return putRuns(b, list, replayLimit, liveTtl);
}

/**
 * Puts one job's held runs in the pipeline, before another write of that job; the shard's other runs
 * stay held. Returns the writes added besides the runs' tokens.
 */
export function putHeldOf(
  b: Batch,
  jobId: string,
  shard: number,
  replayLimit: number,
  liveTtl: number,
): number {
  const list = b.held.get(shard);
  if (list === undefined || !b.heldJobs.delete(jobId)) return 0;
  const mine = list.filter((run) => run.jobId === jobId);
  const rest = list.filter((run) => run.jobId !== jobId);
  if (rest.length === 0) {
    b.held.delete(shard);
    b.heldTokens.delete(shard);
  } else {
    b.held.set(shard, rest);
    b.heldTokens.set(
      shard,
      rest.reduce((n, run) => n + run.values.length, 0),
    );
  }
  return putRuns(b, mine, replayLimit, liveTtl);
}

/**
 * Puts runs of one shard in the pipeline: a lone run as its own command (`putRun`), more as one
 * TOKEN_RUNS command. Returns the writes added besides the runs' tokens.
 */
function putRuns(b: Batch, list: OpenRun[], replayLimit: number, liveTtl: number): number {
  if (list.length === 1) return putRun(list[0]!, replayLimit, liveTtl);
  const keys: string[] = [];
  const field = list[0]!.field;
  const lone = list.every((run) => run.values.length === 1 && run.field === field);
  const args: Array<string | number> = [
    replayLimit === Infinity ? '' : replayLimit,
    liveTtl,
    lone ? field : '',
  ];
  list.forEach((run, position) => {
    b.runs.push([b.commands, run.jobId, run.seq, run.values.length, position]);
    keys.push(run.key);
    if (lone) args.push(tokenId(run.seq), run.values[0]!);
    else {
      args.push(tokenId(run.seq), run.field, run.values.length);
      for (const v of run.values) args.push(v);
    }
  });
  b.pipe.jrTokenRuns(keys.length, ...keys, ...args);
  b.commands++;
  return 0;
}

/** Puts every run the batch holds in its pipeline (see putHeld). */
export function putAllHeld(b: Batch, replayLimit: number, liveTtl: number): number {
  let added = 0;
  for (const shard of [...b.held.keys()]) added += putHeld(b, shard, replayLimit, liveTtl);
  return added;
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

/** Puts a live job's token count in the batch: published with its shard's others (see putProgress). */
export function addProgress(b: Batch, shard: number, jobId: string, count: number, at: number): void {
  b.progress ??= new Map();
  let list = b.progress.get(shard);
  if (list === undefined) b.progress.set(shard, (list = []));
  list.push(`${jobId} ${count}`);
  b.progressAt = at;
}

/** Puts a request to cancel a job in the batch: an entry of the job's shard's event stream for its owner. */
export function putCancelRequest(
  b: Batch,
  events: string,
  maxLen: number,
  origin: string,
  jobId: string,
  reason: string,
  request: string,
  at: number,
): void {
  const fields = ['type', 'cancel', 'job', jobId, 'at', String(at), 'origin', origin, 'req', request];
  b.pipe.xadd(events, 'MAXLEN', '~', maxLen, '*', ...fields, 'error', reason);
  addCommand(b);
}

/** An empty batch over a fresh pipeline. */
export function newBatch(pipe: Pipeline & ScriptCommands): Batch {
  return {
    pipe,
    size: 0,
    commands: 0,
    runs: [],
    transitions: [],
    tokenJobs: new Set(),
    held: new Map(),
    heldJobs: new Set(),
    heldTokens: new Map(),
    ends: undefined,
    claims: undefined,
  };
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
  // Claims first: a job whose key went to another job has ended before its later writes are read.
  if (b.claims !== undefined)
    for (const [index, jobId, key] of b.claims) {
      const [err, reply] = results[index] ?? [null, null];
      if (err === null) hooks.claimAnswered(jobId, key, reply);
    }
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
    // Whether the run's entries are all there tells a resend of a stored run (the first entry refused,
    // every one already there) from tokens Redis never took.
    hooks.tokenRefused(run[1], run[2], run[2] + run[3] - 1);
  };
  for (const run of b.runs) {
    const [err, reply] = results[run[0]] ?? [null, null];
    if (err !== null || !Array.isArray(reply)) continue; // errors: below
    // TOKEN_RUNS answers the positions of the runs it refused; TOKENS (more than one token) answers an
    // array only when it refused one.
    if (run[4] >= 0 ? reply.length > 0 && (reply as unknown[]).includes(run[4]) : run[3] > 1) refuse(run);
  }
  for (let i = 0; i < results.length; i++) {
    const err = results[i]![0];
    if (err === null) continue;
    let found = false;
    for (let k = firstRunAt(b.runs, i); k < b.runs.length && b.runs[k]![0] === i; k++) {
      refuse(b.runs[k]!);
      found = true;
    }
    if (!found) failed(err);
  }
}

/** Index in `runs` of the first run of the command at `index`, if any (runs are in command order). */
function firstRunAt(runs: Run[], index: number): number {
  let lo = 0;
  let hi = runs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (runs[mid]![0] < index) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
