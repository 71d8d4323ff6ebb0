/**
 * THE FAULT CHECKER: drives many concurrent jobs through several example-server processes that share one
 * registry through Redis, injects faults from a seeded schedule, and checks every reader and every job.
 *
 *   const report = await runChaos({ seed: 1, durationMs: 30_000, servers: 3, mode: 'single' });
 *
 * What is checked (each failure is a violation with the job, the reader and what was seen):
 *  1. tokens: every reader gets exactly the producer's sequence from its resume point (contiguous seqs,
 *     token == words[seq % n], no duplicate, no gap, nothing past what the producer makes); a reader may
 *     stop early only with a typed refusal (410 when the owner bounds its replay buffer, 404 once the job
 *     may be gone).
 *  2. ends: every reader ends (done, an `error` event, or a 404/410) within leaseMs + 2 s of its job
 *     ending, its owner being killed or its data vanishing (plus the time Redis itself was unavailable,
 *     the reader's own stalls and reconnect delays); later is `slow_end`, never is `hung`.
 *  3. agreement: readers and every live process report one terminal state per job, one the job's history
 *     explains (its fail_after, a cancel we sent, a fault it lived through); `done` only after every token.
 *  4. processes: no uncaught exception, no warning, no exit we did not cause.
 *  5. cleanup: after SIGTERM of every server and retention + lease + 2 s, no key is left under the prefix.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { request } from 'node:http';
import { Rng } from './prng.js';
import {
  ClusterRedis,
  OwnRedis,
  haveRedisServer,
  sleep,
  within,
  type ClientInfo,
  type NodeAddress,
  type RedisControl,
} from './redis-control.js';
import {
  newRecord,
  runClientReader,
  runRawReader,
  type JobSpec,
  type ReaderPlan,
  type ReaderRecord,
} from './readers.js';
import {
  signalProc,
  spawnServerProc,
  type ServerProblem,
  type ServerProc,
  type SlotConfig,
} from './servers.js';

export type FaultKind =
  | 'server_kill'
  | 'server_term'
  | 'client_kill'
  | 'pause'
  | 'restart_persist'
  | 'restart_nopersist'
  | 'flushall'
  | 'cancel'
  | 'cut'
  | 'stall'
  | 'flood';

export interface ChaosOptions {
  seed: number;
  /** How long jobs are created and faults injected; draining and the cleanup check come on top. */
  durationMs: number;
  servers?: number;
  mode: 'single' | 'cluster';
  log?: (line: string) => void;
  /** Inject faults (kills, Redis restarts, flushes, pauses, client kills, cancels, cuts). Default true. */
  faults?: boolean;
  /** Stress without faults: a bounded replay buffer on one server, fat-token bursts and stalled readers. Default true. */
  stress?: boolean;
  leaseMs?: number;
  retentionMs?: number;
  replayLimit?: number;
  /** Jobs kept in flight. Default 16. */
  concurrency?: number;
  /** Cap on a job's nominal duration (max_tokens x delay_ms). Default 6000. */
  maxJobMs?: number;
  /** Cluster mode: the cluster to use; without it the harness starts one with test/helpers/cluster.ts. */
  clusterNodes?: NodeAddress[];
  /** The project root (where examples/ is). Default process.cwd(). */
  cwd?: string;
  /** Only these scheduled fault kinds (to reproduce one kind of failure). */
  only?: FaultKind[];
  /** Write every server's output to `<logDir>/<name>.log`. */
  logDir?: string;
  /**
   * How long Redis stays stopped in a restart (ms); default a draw of 100-1000. Longer outages let
   * leases lapse while their owners live (to reproduce a failure seen under load).
   */
  restartMs?: number;
}

export interface Violation {
  kind: string;
  job: string;
  reader?: string;
  detail: string;
}

export interface ChaosReport {
  seed: number;
  mode: 'single' | 'cluster';
  durationMs: number;
  faultsEnabled: boolean;
  stress: boolean;
  prefix: string;
  faults: Record<string, number>;
  jobs: number;
  readers: number;
  tokensChecked: number;
  violations: Violation[];
  /** What happened that is not a violation (skipped faults, logged backend errors, timings). */
  notes: string[];
  elapsedMs: number;
}

// ---------------------------------------------------------------- records

interface FaultRecord {
  kind: FaultKind;
  at: number;
  /** When Redis (or one master) was unavailable because of it. */
  window?: { from: number; to: number };
  /** The process it targeted. */
  proc?: string;
  /** Data lost at `at` (FLUSHALL, restart without persistence). */
  loss?: boolean;
  detail: string;
}

/**
 * The last fault in `[from, until]` that can touch a job: on one of `servers` (its owner, its reader's
 * servers), or on Redis itself (no process, or a client that is not a server's).
 */
export function nearestFault<F extends { at: number; proc?: string }>(
  faults: readonly F[],
  o: { from: number; until: number; servers: ReadonlySet<string> },
): F | undefined {
  let best: F | undefined;
  for (const f of faults) {
    if (f.at < o.from || f.at > o.until) continue;
    if (f.proc !== undefined && /^s\d/.test(f.proc) && !o.servers.has(f.proc)) continue;
    if (best === undefined || f.at > best.at) best = f;
  }
  return best;
}

interface CancelRecord {
  /** When the answer came. */
  at: number;
  sentAt: number;
  proc: string;
  status: number | 'error';
  state?: string;
  detail?: string;
}

interface Answer {
  proc: string;
  at: number;
  /** A terminal or live state, 'missing' (404), or 'unknown' (503, timeout). */
  state: string;
  count?: number;
  note?: string;
}

interface JobRecord {
  n: number;
  id: string;
  spec: JobSpec;
  params: { max_tokens: number; delay_ms: number; fail_after?: number; words: number; fat: boolean };
  nominalMs: number;
  owner: ServerProc;
  postAt: number;
  createdAt: number;
  readers: ReaderRecord[];
  pendingReaders: number;
  cancels: CancelRecord[];
  /** From snapshots: the first terminal state a process reported, and its updated_at. */
  endAt?: number;
  endState?: string;
  endCount?: number;
  endSeenOn?: string;
  lastSnapshot?: { state: string; count: number; proc: string; at: number };
  knownCount: number;
  /** When a snapshot last showed more tokens than before. */
  countChangedAt?: number;
  firstTerminalAt?: number;
  /** A DELETE answered 200 or 409: the job had ended by then. */
  deleteEndAt?: number;
  consistency?: Answer[];
  consistencyStarted: boolean;
  consistencyDone: boolean;
  stuckReported: boolean;
  lastPoll: number;
}

interface Slot {
  index: number;
  config: SlotConfig;
  generation: number;
  proc?: ServerProc;
  starting?: Promise<ServerProc | undefined>;
}

interface ScheduledFault {
  offset: number;
  kind: Exclude<FaultKind, 'cancel' | 'cut' | 'stall' | 'flood'>;
  u: number;
  ms: number;
  variant: string;
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

// ---------------------------------------------------------------- small helpers

interface HttpAnswer {
  status: number;
  body: string;
}

function httpCall(
  url: string,
  method: string,
  body: string | undefined,
  timeoutMs: number,
): Promise<HttpAnswer | { error: string }> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (v: HttpAnswer | { error: string }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(v);
    };
    const req = request(url, {
      method,
      agent: false,
      headers: body !== undefined ? { 'content-type': 'application/json' } : {},
    });
    const timer = setTimeout(() => {
      req.destroy();
      done({ error: `timeout after ${timeoutMs} ms` });
    }, timeoutMs);
    req.on('error', (e) => done({ error: e.message }));
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (t: string) => (text = (text + t).slice(0, 100_000)));
      res.on('end', () => done({ status: res.statusCode ?? 0, body: text }));
      res.on('error', (e) => done({ error: e.message }));
    });
    req.end(body);
  });
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const SPECIAL_WORDS = [
  'naïve',
  '日本語',
  '🙂',
  '"quoted"',
  'back\\slash',
  '<b>bold</b>',
  'data:',
  'id:7',
  'event:done',
  'ünïcödé',
  '{"json":1}',
  'π≈3.14',
];

function randomWord(r: Rng): string {
  if (r.chance(0.15)) return r.pick(SPECIAL_WORDS);
  const len = r.int(1, 8);
  let w = '';
  for (let i = 0; i < len; i++) w += String.fromCharCode(97 + r.int(0, 25));
  return w;
}

function fatWord(r: Rng): string {
  const base = `${randomWord(r)}é${randomWord(r)}`;
  return base.repeat(Math.ceil(r.int(800, 3000) / base.length));
}

/** Bytes a token event of this word takes on the wire (roughly, for choosing cut points). */
function eventBytes(word: string, seq: number): number {
  return 24 + String(seq).length + Buffer.byteLength(JSON.stringify(word));
}

/**
 * What a reader itself waits before reconnecting, after `ref`: a raw reader 0-300 ms; the project's client
 * (an EventSource) the server's `retry:` (1 s) once a whole one reached it, its own default (3 s) before,
 * counting the reconnection it is waiting for now when its last connection has ended.
 */
export function reconnectWaits(rec: ReaderRecord, ref: number, now: number): number {
  if (rec.kind !== 'client') return Math.min(6000, rec.reconnectAt.filter((t) => t >= ref).length * 400);
  const wait = (t: number): number => (rec.retryKnownAt !== undefined && rec.retryKnownAt < t ? 1100 : 3100);
  let ms = 0;
  for (const t of rec.reconnectAt) if (t >= ref) ms += wait(t);
  const last = rec.connections[rec.connections.length - 1];
  if (last !== undefined && last.ended !== 'open') ms += wait(now);
  return Math.min(3 * 3100, ms);
}

/** Length of [from, to] covered by the windows. */
function overlap(windows: Array<{ from: number; to: number }>, from: number, to: number): number {
  let sum = 0;
  for (const w of windows) sum += Math.max(0, Math.min(w.to, to) - Math.max(w.from, from));
  return sum;
}

/** Length of [from, to] covered by at least one of the windows (overlapping windows count once). */
function covered(windows: Array<{ from: number; to: number }>, from: number, to: number): number {
  const parts = windows
    .map((w) => ({ from: Math.max(w.from, from), to: Math.min(w.to, to) }))
    .filter((w) => w.to > w.from)
    .sort((a, b) => a.from - b.from);
  let sum = 0;
  let end = -Infinity;
  for (const w of parts) {
    if (w.to <= end) continue;
    sum += w.to - Math.max(w.from, end);
    end = w.to;
  }
  return sum;
}

/** Socket inode -> local port of every TCP socket (Linux), to tell which process owns a Redis connection. */
function localPortsByInode(): Map<string, number> {
  const out = new Map<string, number>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const port = parseInt(cols[1]!.split(':').pop()!, 16);
      out.set(cols[9]!, port);
    }
  }
  return out;
}

function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) out.add(m[1]!);
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    // not readable
  }
  return out;
}

// ---------------------------------------------------------------- the run

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const run = new ChaosRun(options);
  return run.execute();
}

class ChaosRun {
  private readonly o: Required<
    Omit<ChaosOptions, 'clusterNodes' | 'log' | 'only' | 'logDir' | 'restartMs'>
  > & {
    clusterNodes?: NodeAddress[];
    only?: FaultKind[];
    logDir?: string;
    restartMs?: number;
  };
  private readonly log: (line: string) => void;
  private readonly rng: Rng;
  private readonly prefix: string;
  private readonly t0 = Date.now();
  private redis: RedisControl | undefined;
  private stopCluster: (() => Promise<void>) | undefined;
  private readonly slots: Slot[] = [];
  private readonly procs: ServerProc[] = [];
  private readonly jobs: JobRecord[] = [];
  private readonly faults: FaultRecord[] = [];
  private readonly faultCounts: Record<string, number> = {};
  private readonly violations: Violation[] = [];
  private readonly notes: string[] = [];
  private readonly problems: ServerProblem[] = [];
  private readonly readerTasks: Promise<void>[] = [];
  private readonly readerAborts = new Map<ReaderRecord, AbortController>();
  private readonly background: Promise<unknown>[] = [];
  private tokensChecked = 0;
  private readonly postFailures = new Map<string, { n: number; first: string }>();
  private readerCount = 0;
  private jobCounter = 0;
  private stopLoops = false;
  private shutdownAt = Infinity;
  private readonly runAbort = new AbortController();

  constructor(options: ChaosOptions) {
    this.o = {
      seed: options.seed,
      durationMs: options.durationMs,
      servers: options.servers ?? 3,
      mode: options.mode,
      faults: options.faults ?? true,
      stress: options.stress ?? true,
      leaseMs: options.leaseMs ?? 1500,
      retentionMs: options.retentionMs ?? 3000,
      replayLimit: options.replayLimit ?? 200,
      concurrency: options.concurrency ?? 16,
      maxJobMs: options.maxJobMs ?? 6000,
      cwd: options.cwd ?? process.cwd(),
      ...(options.clusterNodes ? { clusterNodes: options.clusterNodes } : {}),
      ...(options.only ? { only: options.only } : {}),
      ...(options.logDir ? { logDir: options.logDir } : {}),
      ...(options.restartMs !== undefined ? { restartMs: options.restartMs } : {}),
    };
    this.log = options.log ?? (() => undefined);
    this.rng = new Rng(`chaos:${options.seed}`);
    this.prefix = `chaos:${options.seed}:${Math.random().toString(36).slice(2, 8)}:`;
  }

  private rel(t: number | undefined): string {
    return t === undefined || !Number.isFinite(t) ? '?' : `t+${((t - this.t0) / 1000).toFixed(3)}s`;
  }

  private violate(kind: string, job: string, detail: string, reader?: string): void {
    const near = this.nearestFault(job, reader);
    this.violations.push({
      kind,
      job,
      ...(reader !== undefined ? { reader } : {}),
      detail: near === undefined ? detail : `${detail}; nearest fault before it: ${near}`,
    });
  }

  /**
   * The last fault, during the job or within a lease before its POST, up to the violation (the reader's
   * end, else the job's end): on the job's owner or the reader's servers, or on Redis itself (a pause, a
   * restart, a flush, a client kill of a non-server client).
   */
  private nearestFault(jobId: string, readerId?: string): string | undefined {
    const job = this.jobs.find((j) => j.id === jobId);
    if (job === undefined) return undefined;
    const rec = readerId === undefined ? undefined : job.readers.find((r) => r.id === readerId);
    const end = this.endKnown(job);
    const best = nearestFault(this.faults, {
      from: job.postAt - this.o.leaseMs,
      until: rec?.end?.at ?? (Number.isFinite(end) ? end : Infinity),
      servers: new Set([job.owner.name, ...(rec?.connections.map((c) => c.proc) ?? [])]),
    });
    if (best === undefined) return undefined;
    return `${best.kind} on ${best.proc ?? 'Redis'} at ${this.rel(best.at)} (${best.detail.slice(0, 80)})`;
  }

  private count(kind: FaultKind, n = 1): void {
    this.faultCounts[kind] = (this.faultCounts[kind] ?? 0) + n;
  }

  private upProcs(): ServerProc[] {
    const out: ServerProc[] = [];
    for (const s of this.slots) if (s.proc?.up) out.push(s.proc);
    return out;
  }

  // ------------------------------------------------------------ setup and teardown

  async execute(): Promise<ChaosReport> {
    let setupOk = false;
    try {
      await this.setup();
      setupOk = !this.problems.some((p) => p.kind === 'setup');
      if (!setupOk) this.notes.push('setup failed: no workload was run');
    } catch (e) {
      this.violate('setup', '-', (e as Error).message);
    }
    try {
      if (setupOk) {
        await this.active();
        await this.drain();
      }
    } catch (e) {
      this.violate('harness_error', '-', `the harness failed: ${(e as Error).stack ?? String(e)}`);
    }
    try {
      await this.teardown(setupOk);
    } catch (e) {
      this.violate('harness_error', '-', `teardown failed: ${(e as Error).stack ?? String(e)}`);
    }
    if (setupOk) this.evaluate();
    for (const p of this.problems) this.violate(p.kind, '-', `${p.proc} at ${this.rel(p.at)}: ${p.detail}`);
    const cuts = this.jobs.reduce((s, j) => s + j.readers.reduce((a, r) => a + r.cutsDone, 0), 0);
    if (cuts > 0) this.faultCounts.cut = cuts;
    const stalls = this.jobs.reduce((s, j) => s + j.readers.reduce((a, r) => a + r.stalls.length, 0), 0);
    if (stalls > 0) this.faultCounts.stall = stalls;
    for (const [key, v] of this.postFailures) this.notes.push(`${key}: ${v.n} (first at ${v.first})`);
    const logged = this.procs.reduce((s, p) => s + p.loggedErrors, 0);
    if (logged > 0) this.notes.push(`server processes logged ${logged} 'job-registry:' error/warning lines`);
    return {
      seed: this.o.seed,
      mode: this.o.mode,
      durationMs: this.o.durationMs,
      faultsEnabled: this.o.faults,
      stress: this.o.stress,
      prefix: this.prefix,
      faults: this.faultCounts,
      jobs: this.jobs.length,
      readers: this.readerCount,
      tokensChecked: this.tokensChecked,
      violations: this.violations,
      notes: this.notes,
      elapsedMs: Date.now() - this.t0,
    };
  }

  private async setup(): Promise<void> {
    if (this.o.mode === 'single') {
      if (!haveRedisServer()) throw new Error('single mode needs redis-server on PATH');
      const own = new OwnRedis();
      this.redis = own;
      await own.start();
      this.log(`redis-server on port ${own.port}, dir ${own.dir}, prefix ${this.prefix}`);
    } else {
      let nodes = this.o.clusterNodes;
      if (nodes === undefined) {
        const helper = (await import('../helpers/cluster.js')) as {
          clusterNodes(): Promise<{ nodes: NodeAddress[]; stop(): Promise<void> } | undefined>;
        };
        const c = await helper.clusterNodes();
        if (c === undefined)
          throw new Error('no Redis Cluster available (test/helpers/cluster.ts gave none)');
        nodes = c.nodes;
        this.stopCluster = () => c.stop();
      }
      const cl = new ClusterRedis(nodes);
      this.redis = cl;
      await cl.start();
      this.log(`redis cluster ${nodes.map((n) => `${n.host}:${n.port}`).join(',')}, prefix ${this.prefix}`);
    }
    const cfgRng = this.rng.fork('slots');
    for (let i = 0; i < this.o.servers; i++) {
      const config: SlotConfig = { blockMs: cfgRng.pick([300, 1000, 2000]) };
      if (this.o.stress && i % 3 === 1) config.replayLimit = this.o.replayLimit;
      this.slots.push({ index: i, config, generation: 0 });
    }
    const started = await Promise.all(this.slots.map((s) => this.startSlot(s)));
    if (started.some((p) => p === undefined)) throw new Error('not every server started');
    this.log(
      `servers: ${this.slots
        .map(
          (s) =>
            `${s.proc!.name} ${s.proc!.url}${s.config.replayLimit ? ` replayLimit=${s.config.replayLimit}` : ''} blockMs=${s.config.blockMs}`,
        )
        .join('; ')}`,
    );
  }

  private startSlot(slot: Slot, attempt = 0): Promise<ServerProc | undefined> {
    slot.generation++;
    const env: Record<string, string> = {
      ...this.redis!.serverEnv(),
      REDIS_PREFIX: this.prefix,
      REDIS_LEASE_MS: String(this.o.leaseMs),
      RETENTION_MS: String(this.o.retentionMs),
      REDIS_BLOCK_MS: String(slot.config.blockMs),
      REPLAY_LIMIT: slot.config.replayLimit !== undefined ? String(slot.config.replayLimit) : 'Infinity',
      // The example server's public limits are off here: the checker floods on purpose, and a job waiting
      // for an executor slot or refused at POST is not the fault it looks for.
      CONCURRENCY: 'Infinity',
      MAX_JOBS: 'Infinity',
      MAX_TOKENS_PER_JOB: 'Infinity',
      MAX_STREAMS_PER_JOB: 'Infinity',
      MAX_STREAMS_PER_PRINCIPAL: 'Infinity',
      MAX_CONNECTIONS: 'Infinity',
      MAX_SOCKETS: 'Infinity',
      MAX_DELAY_MS: '600000',
      // A SIGTERM here stops a server at once, as before: the checker replaces it.
      DRAIN_MS: '0',
    };
    const p = spawnServerProc({
      slot: slot.index,
      generation: slot.generation,
      env,
      cwd: this.o.cwd,
      startTimeoutMs: 30_000,
      onProblem: (pr) => {
        this.problems.push(pr);
        // A process that died on its own is replaced, so the run goes on with every slot.
        if (pr.kind === 'server_exit' && !this.stopLoops && slot.proc?.name === pr.proc)
          void this.startSlot(slot);
      },
      expectShared: true,
      ...(this.o.logDir !== undefined
        ? { logFile: `${this.o.logDir}/s${slot.index}#${slot.generation}.log` }
        : {}),
    }).then(
      (proc) => {
        this.procs.push(proc);
        slot.proc = proc;
        return proc;
      },
      async (e: unknown) => {
        // A replacement that starts while Redis is down exits at once ("cannot reach Redis", as
        // documented): try again a few times before calling it a failure.
        if (this.procs.length >= this.slots.length && attempt < 5 && !this.stopLoops) {
          this.notes.push(
            `replacement for slot ${slot.index} failed to start (attempt ${attempt + 1}): ${(e as Error).message.slice(0, 200)}`,
          );
          await sleep(1000);
          return this.startSlot(slot, attempt + 1);
        }
        this.violate('setup', '-', `slot ${slot.index}: ${(e as Error).message}`);
        return undefined;
      },
    );
    slot.starting = p;
    return p;
  }

  private async teardown(setupOk: boolean): Promise<void> {
    this.stopLoops = true;
    this.runAbort.abort();
    for (const abort of this.readerAborts.values()) abort.abort();
    await Promise.all(this.readerTasks.map((t) => within(15_000, 'reader end', t).catch(() => undefined)));
    await Promise.all(
      this.background.map((t) => within(15_000, 'background task', t).catch(() => undefined)),
    );
    await Promise.all(this.slots.map((s) => s.starting?.catch(() => undefined)));
    this.shutdownAt = Date.now();
    const live = this.procs.filter((p) => p.exited === undefined);
    const results = await Promise.all(
      live.map(async (p) => [p, await signalProc(p, 'SIGTERM', 10_000)] as const),
    );
    for (const [p, how] of results)
      if (how === 'forced')
        this.violate('server_exit', '-', `${p.name} did not exit within 10 s of SIGTERM (killed)`);
    if (setupOk && this.redis !== undefined) {
      const wait = this.o.retentionMs + 2000 + this.o.leaseMs;
      this.log(
        `servers stopped; waiting ${wait} ms (retention + lease + 2 s) before scanning ${this.prefix}*`,
      );
      await sleep(wait);
      try {
        const keys = (await this.redis.scan(this.prefix)).sort();
        if (keys.length > 0) {
          const some = keys.slice(0, 1000);
          const ttls = await this.redis.pttl(some).catch(() => some.map(() => NaN));
          const withTtl = some.map((k, i) => ({ k, t: ttls[i]! }));
          // Keys that never expire first: those are leaks; the others only outlive the wait.
          withTtl.sort((a, b) => (a.t === -1 ? -1 : b.t === -1 ? 1 : b.t - a.t));
          const forever = withTtl.filter((x) => x.t === -1).length;
          const fmt = (t: number): string =>
            t === -1 ? 'no TTL' : t >= 0 ? `expires in ${(t / 1000).toFixed(1)} s` : `pttl ${t}`;
          this.violate(
            'key_left',
            '-',
            `${keys.length} key(s) left under ${this.prefix} ${wait} ms after every server stopped ` +
              `(${forever} without a TTL): ${withTtl
                .slice(0, 10)
                .map((x) => `${x.k} (${fmt(x.t)})`)
                .join(', ')}${keys.length > 10 ? ', ...' : ''}`,
          );
        }
      } catch (e) {
        this.violate('harness_error', '-', `could not scan the prefix: ${(e as Error).message}`);
      }
    }
    await this.redis?.close().catch(() => undefined);
    await this.stopCluster?.().catch(() => undefined);
  }

  // ------------------------------------------------------------ the active phase

  private async active(): Promise<void> {
    const start = Date.now();
    const end = start + this.o.durationMs;
    const schedule = this.o.faults ? this.makeSchedule() : [];
    this.log(
      `active phase ${this.o.durationMs} ms, ${schedule.length} scheduled faults: ${schedule
        .map((f) => `${(f.offset / 1000).toFixed(1)}s ${f.kind}`)
        .join(', ')}`,
    );
    const loops = [
      this.faultLoop(schedule, start),
      this.monitorLoop(),
      this.watchdogLoop(),
      this.statusLoop(),
    ];
    this.background.push(...loops.slice(1));
    const jobRng = this.rng.fork('jobs');
    let inflightPosts = 0;
    let lastCreate = 0;
    while (Date.now() < end) {
      const activeJobs = this.jobs.filter((j) => j.pendingReaders > 0).length;
      if (
        activeJobs + inflightPosts < this.o.concurrency &&
        inflightPosts < 4 &&
        Date.now() - lastCreate >= 30
      ) {
        lastCreate = Date.now();
        inflightPosts++;
        const n = this.jobCounter++;
        const u = jobRng.next();
        void this.createJob(n, u).finally(() => inflightPosts--);
      }
      await sleep(10);
    }
    await loops[0];
    this.log(`active phase over: ${this.jobs.length} jobs`);
  }

  private makeSchedule(): ScheduledFault[] {
    const r = this.rng.fork('faults');
    const single = this.o.mode === 'single';
    const weights: Record<ScheduledFault['kind'], number> = single
      ? {
          server_kill: 3,
          server_term: 1,
          client_kill: 3,
          pause: 2,
          restart_persist: 2,
          restart_nopersist: 1,
          flushall: 1,
        }
      : {
          server_kill: 3,
          server_term: 1,
          client_kill: 4,
          pause: 3,
          restart_persist: 0,
          restart_nopersist: 0,
          flushall: 0,
        };
    if (this.o.only !== undefined)
      for (const k of Object.keys(weights) as Array<ScheduledFault['kind']>)
        if (!this.o.only.includes(k)) weights[k] = 0;
    const allowed = (k: ScheduledFault['kind']): boolean => weights[k] > 0;
    if (!Object.values(weights).some((w) => w > 0)) return [];
    const out: ScheduledFault[] = [];
    let t = 1500 + r.int(0, 1000);
    let lastRedis = -Infinity;
    while (t < this.o.durationMs - 1000) {
      let kind = r.weighted(weights);
      const disruptive = kind === 'pause' || kind.startsWith('restart') || kind === 'flushall';
      if (disruptive && t - lastRedis < 4000) {
        const calmer = r.chance(0.5) ? 'client_kill' : 'server_kill';
        if (!allowed(calmer)) {
          t += 1000;
          continue;
        }
        kind = calmer;
      } else if (disruptive) lastRedis = t;
      const ms = kind === 'pause' ? r.int(2000, 4000) : kind.startsWith('restart') ? r.int(100, 1000) : 0;
      const variant =
        kind === 'restart_persist'
          ? r.pick(['shutdown', 'sigkill'])
          : kind === 'pause' && t < this.o.durationMs - 10_000
            ? r.pick(['plain', 'flood'])
            : '';
      out.push({ offset: t, kind, u: r.next(), ms, variant });
      t += 1200 + r.int(0, 2400);
    }
    return out;
  }

  private async faultLoop(schedule: ScheduledFault[], start: number): Promise<void> {
    for (const f of schedule) {
      const wait = start + f.offset - Date.now();
      if (wait > 0) await sleep(wait);
      if (this.stopLoops) return;
      try {
        await within(20_000, `fault ${f.kind}`, this.inject(f));
      } catch (e) {
        this.notes.push(`fault ${f.kind} at ${this.rel(Date.now())} failed: ${(e as Error).message}`);
      }
    }
  }

  private liveOwned(proc: ServerProc): number {
    return this.jobs.filter((j) => j.owner === proc && !Number.isFinite(this.endKnown(j))).length;
  }

  private async inject(f: ScheduledFault): Promise<void> {
    const redis = this.redis!;
    const at = Date.now();
    switch (f.kind) {
      case 'server_kill':
      case 'server_term': {
        const up = this.upProcs();
        if (up.length < this.slots.length || up.length < 2) {
          this.notes.push(`${f.kind} at ${this.rel(at)} skipped: a server is still being replaced`);
          return;
        }
        const owning = up.filter((p) => this.liveOwned(p) > 0);
        const pool = owning.length > 0 ? owning : up;
        const victim = pool[Math.floor(f.u * pool.length)]!;
        const signal = f.kind === 'server_kill' ? 'SIGKILL' : 'SIGTERM';
        const owned = this.liveOwned(victim);
        this.faults.push({
          kind: f.kind,
          at,
          proc: victim.name,
          detail: `${signal} ${victim.name} (${owned} live jobs)`,
        });
        this.count(f.kind);
        this.log(`${this.rel(at)} ${signal} ${victim.name} owning ${owned} live jobs`);
        const slot = this.slots[victim.slot]!;
        const stopped = signalProc(victim, signal, 10_000);
        if (signal === 'SIGTERM') {
          // The replacement starts once the old process is gone (a graceful restart).
          const how = await stopped;
          if (how === 'forced')
            this.violate('server_exit', '-', `${victim.name} did not exit within 10 s of SIGTERM (killed)`);
        }
        void this.startSlot(slot);
        return;
      }
      case 'client_kill': {
        const node = Math.floor(f.u * redis.nodeCount());
        const clients = (await redis.clientList(node)).filter((c) => c.name.includes(this.prefix));
        const up = this.upProcs();
        const byProc = this.attribute(clients, up);
        const candidates = [...byProc.entries()].filter(([, cs]) => cs.length > 0);
        if (candidates.length === 0) {
          this.notes.push(
            `client_kill at ${this.rel(at)} on ${redis.nodeName(node)}: no connection of this run found`,
          );
          return;
        }
        const [target, cs] = candidates[Math.floor(f.u * 997) % candidates.length]!;
        const killed = await redis.clientKill(
          node,
          cs.map((c) => c.id),
        );
        this.faults.push({
          kind: 'client_kill',
          at,
          proc: target,
          detail: `CLIENT KILL of ${killed}/${cs.length} connection(s) of ${target} on ${redis.nodeName(node)}`,
        });
        this.count('client_kill');
        this.log(
          `${this.rel(at)} CLIENT KILL ${killed} connection(s) of ${target} on ${redis.nodeName(node)}`,
        );
        return;
      }
      case 'pause': {
        const node = Math.floor(f.u * redis.nodeCount());
        await redis.pause(node, f.ms);
        this.faults.push({
          kind: 'pause',
          at,
          window: { from: at, to: at + f.ms },
          detail: `CLIENT PAUSE ${f.ms} ALL on ${redis.nodeName(node)}`,
        });
        this.count('pause');
        this.log(`${this.rel(at)} CLIENT PAUSE ${f.ms} ALL on ${redis.nodeName(node)}`);
        const up = this.upProcs();
        if (f.variant === 'flood' && up.length > 0) {
          // 60 bursts of 2000 tokens on one process while Redis answers nothing: its queued writes pass
          // the backend's maxPendingWrites (100k), so it must refuse writes without crashing.
          const target = up[Math.floor(f.u * 7919) % up.length]!;
          this.count('flood');
          this.log(
            `${this.rel(Date.now())} flood: 60 bursts of 2000 tokens on ${target.name} during the pause`,
          );
          for (let i = 0; i < 60; i++) void this.createJob(this.jobCounter++, 0, target);
        }
        return;
      }
      case 'restart_persist':
      case 'restart_nopersist': {
        const own = redis as OwnRedis;
        const persist = f.kind === 'restart_persist';
        const how = persist ? (f.variant as 'shutdown' | 'sigkill') : 'nosave';
        // The outage is on record from the moment Redis stops, open-ended until it is back: a check made
        // while Redis is still down (loading its AOF can take seconds on a busy machine) knows of it.
        const fault: FaultRecord = {
          kind: f.kind,
          at,
          window: { from: at, to: Infinity },
          detail: `redis ${persist ? `restart with its AOF (${how})` : 'SHUTDOWN NOSAVE and restart with an empty dir'}, still down`,
        };
        this.faults.push(fault);
        this.count(f.kind);
        await own.stop(how);
        const stoppedAt = Date.now();
        if (!persist) {
          own.wipe();
          fault.at = stoppedAt;
          fault.loss = true;
        }
        await sleep(this.o.restartMs ?? f.ms);
        try {
          await own.start();
        } finally {
          const upAt = Date.now();
          fault.window = { from: at, to: upAt };
          fault.detail = fault.detail.replace('still down', `down ${upAt - at} ms`);
        }
        const upAt = fault.window.to;
        this.log(`${this.rel(at)} redis ${f.kind} (${how}), down ${upAt - at} ms`);
        return;
      }
      case 'flushall': {
        await (redis as OwnRedis).flushAll();
        this.faults.push({ kind: 'flushall', at, loss: true, detail: 'FLUSHALL' });
        this.count('flushall');
        this.log(`${this.rel(at)} FLUSHALL`);
        return;
      }
    }
  }

  /** Which live process each connection belongs to: by socket (/proc), else by the owner id in its name. */
  private attribute(clients: ClientInfo[], procs: ServerProc[]): Map<string, ClientInfo[]> {
    const out = new Map<string, ClientInfo[]>();
    const ports = localPortsByInode();
    const portToProc = new Map<number, string>();
    for (const p of procs)
      for (const inode of socketInodes(p.pid)) {
        const port = ports.get(inode);
        if (port !== undefined) portToProc.set(port, p.name);
      }
    for (const c of clients) {
      const port = Number(c.addr.split(':').pop());
      let owner = portToProc.get(port);
      if (owner === undefined) {
        const uuid = /([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/.exec(c.name)?.[1];
        if (uuid === undefined) continue;
        owner = `owner ${uuid.slice(0, 8)}`;
      }
      const list = out.get(owner) ?? [];
      list.push(c);
      out.set(owner, list);
    }
    return out;
  }

  // ------------------------------------------------------------ jobs

  /**
   * Creates job `n` with readers. `flood` makes it a 2000-token burst on that process with one plain
   * reader: many of them while Redis is paused pile up writes (the backend's write backpressure).
   */
  private async createJob(n: number, ownerU: number, flood?: ServerProc): Promise<void> {
    const r = this.rng.fork(`job${n}`);
    const fat = flood === undefined && this.o.stress && r.chance(0.04);
    const words = fat
      ? Array.from({ length: r.int(2, 4) }, () => fatWord(r))
      : Array.from({ length: r.int(1, 12) }, () => randomWord(r));
    const max = flood ? 2000 : fat ? r.int(300, 1500) : r.logInt(20, 2000);
    const burst = flood !== undefined || r.chance(0.25);
    let delay = fat || burst ? 0 : r.int(0, 20);
    if (max * delay > this.o.maxJobMs) delay = Math.floor(this.o.maxJobMs / max);
    const failAfter = flood === undefined && r.chance(0.08) ? r.int(0, max + 5) : undefined;
    const nominalMs = Math.round(max * Math.max(delay, 0.05)) + 200;
    const cancelAfter =
      flood === undefined && this.o.faults && r.chance(0.12)
        ? r.int(0, Math.round(nominalMs * 1.2) + 50)
        : undefined;
    const cap = Math.min(max, failAfter ?? Infinity);
    const expectedBytes = words.reduce((s, w, i) => s + eventBytes(w, i), 0) * (cap / words.length);
    const readerCount = flood ? 1 : r.int(1, 3);
    const plans: ReaderPlan[] = [];
    for (let i = 0; i < readerCount; i++) {
      const kind = flood || r.chance(0.6) ? 'raw' : 'client';
      const late = !flood && r.chance(0.3);
      const cuts: number[] = [];
      if (!flood && this.o.faults && r.chance(0.3)) {
        const span = Math.max(60, Math.round(expectedBytes));
        cuts.push(r.int(1, span));
        if (r.chance(0.3)) cuts.push(r.int(1, span));
      }
      const stalls =
        this.o.stress && kind === 'raw' && (fat ? r.chance(0.7) : r.chance(0.05))
          ? [{ atByte: r.int(0, fat ? 200_000 : 5000), ms: r.int(500, 2500) }]
          : [];
      plans.push({
        id: `r${n}.${i}`,
        kind,
        startDelayMs: late ? r.int(50, Math.round(nominalMs * 1.3) + 200) : r.int(0, 30),
        resume: late && r.chance(0.6) ? { pick: r.next() } : undefined,
        resumeVia: r.chance(0.5) ? 'header' : 'query',
        cuts,
        stalls,
        reconnectDelayMs: r.int(0, 300),
      });
    }
    const up = this.upProcs();
    if (up.length === 0) return;
    const owner = flood ?? up[Math.floor(ownerU * up.length)]!;
    const payload: Record<string, unknown> = { prompt: words.join(' '), max_tokens: max, delay_ms: delay };
    if (failAfter !== undefined) payload.fail_after = failAfter;
    const postAt = Date.now();
    const res = await httpCall(`${owner.url}/v1/inference`, 'POST', JSON.stringify(payload), 10_000);
    if ('error' in res || res.status !== 202) {
      const what = 'error' in res ? res.error : `HTTP ${res.status} ${res.body.slice(0, 200)}`;
      if (owner.signalled !== undefined || this.redisFaultNear(postAt, Date.now())) {
        const key = `POSTs to ${owner.name} failed during a fault`;
        const prev = this.postFailures.get(key);
        this.postFailures.set(key, {
          n: (prev?.n ?? 0) + 1,
          first: prev?.first ?? `${this.rel(postAt)} ${what}`,
        });
      } else this.violate('post_failed', '-', `POST to ${owner.name} at ${this.rel(postAt)}: ${what}`);
      return;
    }
    const body = parseJson(res.body);
    const id = typeof body?.job_id === 'string' ? body.job_id : undefined;
    if (id === undefined || body?.sse_url !== `/v1/inference/${id}/stream`) {
      this.violate('bad_status', '-', `POST to ${owner.name}: unexpected 202 body ${res.body.slice(0, 200)}`);
      return;
    }
    const slot = this.slots[owner.slot]!;
    const job: JobRecord = {
      n,
      id,
      spec: { id, words, cap, ownerReplayLimit: slot.config.replayLimit },
      params: {
        max_tokens: max,
        delay_ms: delay,
        ...(failAfter !== undefined ? { fail_after: failAfter } : {}),
        words: words.length,
        fat,
      },
      nominalMs,
      owner,
      postAt,
      createdAt: Date.now(),
      readers: [],
      pendingReaders: plans.length,
      cancels: [],
      knownCount: 0,
      consistencyStarted: false,
      consistencyDone: false,
      stuckReported: false,
      lastPoll: 0,
    };
    this.jobs.push(job);
    for (const plan of plans) this.startReader(job, plan, r.fork(plan.id));
    if (cancelAfter !== undefined) this.background.push(this.cancelLater(job, cancelAfter, r.next()));
  }

  private startReader(job: JobRecord, plan: ReaderPlan, r: Rng): void {
    const rec = newRecord(plan, job.id, Date.now());
    job.readers.push(rec);
    this.readerCount++;
    const abort = new AbortController();
    this.readerAborts.set(rec, abort);
    if (this.runAbort.signal.aborted) abort.abort();
    const task = (async () => {
      if (plan.startDelayMs > 0) await sleep(plan.startDelayMs);
      if (abort.signal.aborted) {
        rec.end ??= { at: Date.now(), how: 'aborted' };
        return;
      }
      if (plan.resume !== undefined) {
        const known = Math.max(job.knownCount, ...job.readers.map((x) => (x.lastSeq ?? -1) + 1));
        if (known > 0) rec.after = Math.min(known - 1, Math.floor(plan.resume.pick * known));
      }
      const ctx = {
        plan,
        rec,
        job: job.spec,
        pick: () => {
          const up = this.upProcs();
          return up.length === 0 ? undefined : up[Math.floor(r.next() * up.length)];
        },
        rng: r,
        signal: abort.signal,
        countTokens: (k: number) => (this.tokensChecked += k),
      };
      await (plan.kind === 'raw' ? runRawReader(ctx) : runClientReader(ctx));
      if (
        rec.end !== undefined &&
        rec.end.how !== 'aborted' &&
        ['done', 'failed', 'cancelled'].includes(rec.end.how)
      )
        job.firstTerminalAt = Math.min(job.firstTerminalAt ?? Infinity, rec.end.at);
    })()
      .catch((e: unknown) => {
        this.violate('harness_error', job.id, `reader crashed: ${(e as Error).stack ?? String(e)}`, rec.id);
        rec.end ??= { at: Date.now(), how: 'aborted' };
      })
      .finally(() => {
        job.pendingReaders--;
        this.readerAborts.delete(rec);
        if (job.firstTerminalAt !== undefined) this.maybeCheckConsistency(job);
      });
    this.readerTasks.push(task);
  }

  private async cancelLater(job: JobRecord, afterMs: number, u: number): Promise<void> {
    await sleep(afterMs);
    if (this.stopLoops) return;
    const up = this.upProcs();
    if (up.length === 0) return;
    const proc = up[Math.floor(u * up.length)]!;
    const sentAt = Date.now();
    this.count('cancel');
    const res = await httpCall(
      `${proc.url}/v1/inference/${encodeURIComponent(job.id)}`,
      'DELETE',
      undefined,
      8000,
    );
    const rec: CancelRecord = {
      at: Date.now(),
      sentAt,
      proc: proc.name,
      status: 'error' in res ? 'error' : res.status,
    };
    if ('error' in res) rec.detail = res.error;
    else {
      const body = parseJson(res.body);
      if (typeof body?.state === 'string') rec.state = body.state;
      if (res.status !== 200 && res.status !== 409) rec.detail = res.body.slice(0, 200);
    }
    job.cancels.push(rec);
    if (rec.status === 200 || rec.status === 409) {
      job.deleteEndAt = Math.min(job.deleteEndAt ?? Infinity, rec.at);
      this.maybeCheckConsistency(job);
    }
  }

  // ------------------------------------------------------------ observing jobs

  private async monitorLoop(): Promise<void> {
    while (!this.stopLoops) {
      const now = Date.now();
      const due = this.jobs.filter((j) => j.endAt === undefined && now - j.lastPoll >= 400).slice(0, 40);
      await Promise.all(due.map((j) => this.poll(j)));
      await sleep(150);
    }
  }

  private async poll(job: JobRecord): Promise<void> {
    job.lastPoll = Date.now();
    const up = this.upProcs();
    const proc = job.owner.up ? job.owner : up[Math.floor(Math.random() * up.length)];
    if (proc === undefined) return;
    const res = await httpCall(
      `${proc.url}/v1/inference/${encodeURIComponent(job.id)}`,
      'GET',
      undefined,
      3000,
    );
    if ('error' in res || res.status !== 200) return;
    const snap = parseJson(res.body);
    if (snap === undefined || typeof snap.state !== 'string') return;
    const count = Number(snap.token_count ?? 0);
    if (count > job.knownCount) job.countChangedAt = Date.now();
    job.knownCount = Math.max(job.knownCount, count);
    job.lastSnapshot = { state: snap.state, count, proc: proc.name, at: Date.now() };
    if (TERMINAL.has(snap.state) && job.endAt === undefined) {
      const updated = Date.parse(String(snap.updated_at));
      job.endAt = Number.isFinite(updated) ? Math.min(updated, Date.now()) : Date.now();
      job.endState = snap.state;
      job.endCount = count;
      job.endSeenOn = proc.name;
      this.maybeCheckConsistency(job);
    }
  }

  private maybeCheckConsistency(job: JobRecord): void {
    if (job.consistencyStarted) return;
    job.consistencyStarted = true;
    this.background.push(
      this.checkConsistency(job).finally(() => {
        job.consistencyDone = true;
      }),
    );
  }

  /** Asks every live process for the job once it ended, until they all answer with an end (or time is up). */
  private async checkConsistency(job: JobRecord): Promise<void> {
    const base = this.endKnown(job);
    const settle = base + 500 - Date.now();
    if (settle > 0) await sleep(settle);
    const history = new Map<string, Answer[]>();
    let finals: Answer[] = [];
    for (;;) {
      await Promise.all(
        this.upProcs().map(async (p) => {
          const res = await httpCall(
            `${p.url}/v1/inference/${encodeURIComponent(job.id)}`,
            'GET',
            undefined,
            3000,
          );
          // The time of the answer (a 404 is judged against retention by when it was given).
          const at = Date.now();
          if (p.signalled !== undefined) return;
          let a: Answer;
          if ('error' in res) a = { proc: p.name, at, state: 'unknown', note: res.error };
          else if (res.status === 404) a = { proc: p.name, at, state: 'missing' };
          else if (res.status === 200) {
            const snap = parseJson(res.body);
            a = {
              proc: p.name,
              at,
              state: typeof snap?.state === 'string' ? snap.state : 'unknown',
              count: Number(snap?.token_count ?? NaN),
            };
          } else a = { proc: p.name, at, state: 'unknown', note: `HTTP ${res.status}` };
          const h = history.get(p.name) ?? [];
          h.push(a);
          history.set(p.name, h);
        }),
      );
      const live = new Set(this.upProcs().map((p) => p.name));
      finals = [];
      for (const [proc, h] of history) {
        const lastTerminal = [...h].reverse().find((a) => TERMINAL.has(a.state));
        const last = h[h.length - 1]!;
        // A 404 or a failed request after an end is the job expiring (or the request failing), not a new answer.
        const final =
          lastTerminal !== undefined &&
          !TERMINAL.has(last.state) &&
          last.state !== 'running' &&
          last.state !== 'queued'
            ? lastTerminal
            : last;
        // Only processes still alive when the check ends count ("every live process").
        if (!live.has(proc)) continue;
        const ends = [...new Set(h.filter((a) => TERMINAL.has(a.state)).map((a) => a.state))];
        finals.push(
          ends.length > 1
            ? { ...final, note: `${final.note ?? ''} changed its end: ${ends.join(' -> ')}`.trim() }
            : final,
        );
      }
      const states = new Set(finals.filter((a) => TERMINAL.has(a.state)).map((a) => a.state));
      const agreed = states.size <= 1 && finals.every((a) => TERMINAL.has(a.state) || a.state === 'missing');
      const deadline = base + this.o.leaseMs + 2000 + overlap(this.unavailability(), base, Date.now());
      if (agreed || Date.now() > deadline || this.stopLoops) break;
      await sleep(300);
    }
    job.consistency = finals;
    const flips = finals.filter((a) => a.note?.includes('changed its end'));
    if (flips.length > 0)
      this.notes.push(
        `${job.id}: ${flips.map((a) => `${a.proc} ${a.note}`).join('; ')} (the end a process reported changed)`,
      );
  }

  // ------------------------------------------------------------ timing bounds

  private unavailability(): Array<{ from: number; to: number }> {
    return this.faults.flatMap((f) => (f.window ? [f.window] : []));
  }

  /**
   * Time in [from, to] when the job's owner or a process serving the reader had no connection to Redis
   * (its own log says so: a CLIENT KILL, or its reconnect after Redis came back), beyond the windows
   * Redis itself was unavailable: that process could neither store the job's end nor learn it.
   */
  private cutOffBeyond(job: JobRecord, rec: ReaderRecord, from: number, to: number): number {
    const names = new Set([job.owner.name, ...rec.connections.map((c) => c.proc)]);
    const windows = this.procs
      .filter((p) => names.has(p.name))
      .flatMap((p) => [...p.cutOff, ...(p.cutOffSince !== undefined ? [{ from: p.cutOffSince, to }] : [])]);
    if (windows.length === 0) return 0;
    const redis = this.unavailability();
    return covered([...redis, ...windows], from, to) - covered(redis, from, to);
  }

  /**
   * Whether a fault that can make a server answer 503 happened near [from, to]: a Redis fault, or a
   * graceful shutdown (a disposing registry answers 503 until its process exits).
   */
  private redisFaultNear(from: number, to: number): boolean {
    const margin = this.o.leaseMs + 3000;
    return this.faults.some(
      (f) => f.kind !== 'server_kill' && (f.window ? f.window.to : f.at) >= from - margin && f.at <= to,
    );
  }

  /** Whether process `name` was signalled or exited while a request to it was open (its answer is lost). */
  private diedNear(name: string, from: number, to: number): boolean {
    const p = this.procs.find((x) => x.name === name);
    const at = p?.signalled?.at ?? p?.exited?.at;
    return at !== undefined && at >= from - 1000 && at <= to + 1000;
  }

  /** The owner's death while the job was live: our signal, or an exit we did not cause. */
  private ownerSignal(job: JobRecord): { at: number; signal: string } | undefined {
    const o = job.owner;
    const s: { at: number; signal: string } | undefined =
      o.signalled ?? (o.exited !== undefined ? { at: o.exited.at, signal: 'unexpected exit' } : undefined);
    if (s === undefined || s.at >= this.shutdownAt) return undefined;
    if (job.endAt !== undefined && job.endAt < s.at) return undefined;
    return s;
  }

  /** The earliest time the job is known to have ended (Infinity when nobody saw it end). */
  private endKnown(job: JobRecord): number {
    return Math.min(job.endAt ?? Infinity, job.firstTerminalAt ?? Infinity, job.deleteEndAt ?? Infinity);
  }

  /**
   * The earliest the job may have ended: its snapshot's updated_at when a process showed its end, else
   * the first thing that could have ended it (its producer running out, a cancel we sent, its owner's
   * death, a Redis fault that can make its lease lapse). Retention counts from there.
   */
  private earliestEnd(job: JobRecord): number {
    if (job.endAt !== undefined) return job.endAt;
    const candidates = [
      job.postAt + Math.floor(0.9 * job.spec.cap * job.params.delay_ms),
      ...job.cancels.map((c) => c.sentAt),
      this.ownerSignal(job)?.at ?? Infinity,
      ...this.faults
        .filter((f) => f.window !== undefined || f.kind === 'client_kill')
        .map((f) => f.window?.from ?? f.at)
        .filter((t) => t >= job.postAt),
    ];
    return Math.min(...candidates);
  }

  /** The first data loss that hit this job's keys. */
  private lossAt(job: JobRecord): number | undefined {
    for (const f of this.faults) {
      if (!f.loss || f.at < job.postAt) continue;
      const end = this.endKnown(job);
      if (f.at < end + this.o.retentionMs + 1000) return f.at;
    }
    return undefined;
  }

  /** When the job stopped being able to produce: its end, its owner's death, or its data vanishing. */
  private refOf(job: JobRecord): number | undefined {
    const refs = [
      job.endAt,
      job.firstTerminalAt,
      job.deleteEndAt,
      this.ownerSignal(job)?.at,
      this.lossAt(job),
    ].filter((x): x is number => x !== undefined);
    return refs.length === 0 ? undefined : Math.min(...refs);
  }

  /** The latest time a reader may still be open, or undefined while its job has not stopped. */
  private boundOf(
    job: JobRecord,
    rec: ReaderRecord,
    now: number,
  ): { bound: number; ref: number; why: string } | undefined {
    const jobRef = this.refOf(job);
    if (jobRef === undefined || rec.startedAt === undefined) return undefined;
    const lastToken = rec.lastTokenAt ?? 0;
    const ref = Math.max(jobRef, rec.startedAt, lastToken);
    const extra =
      overlap(this.unavailability(), ref, now) +
      this.cutOffBeyond(job, rec, ref, now) +
      overlap(rec.stalls, ref, now) +
      reconnectWaits(rec, ref, now);
    const jobWhy =
      job.endAt !== undefined && job.endAt <= jobRef
        ? `job ended ${job.endState} at ${this.rel(job.endAt)} (seen on ${job.endSeenOn})`
        : job.firstTerminalAt !== undefined && job.firstTerminalAt <= jobRef
          ? `a reader got the job's end at ${this.rel(job.firstTerminalAt)}`
          : job.deleteEndAt !== undefined && job.deleteEndAt <= jobRef
            ? `a DELETE found it ended or ended it (answer at ${this.rel(job.deleteEndAt)})`
            : this.ownerSignal(job) !== undefined && this.ownerSignal(job)!.at <= jobRef
              ? `owner ${job.owner.name} got ${this.ownerSignal(job)!.signal} at ${this.rel(this.ownerSignal(job)!.at)}`
              : `the job's data was lost at ${this.rel(this.lossAt(job))}`;
    const why =
      ref === jobRef
        ? jobWhy
        : ref === rec.startedAt
          ? `it started at ${this.rel(ref)} (${jobWhy})`
          : `its last token at ${this.rel(ref)} (${jobWhy})`;
    return { bound: ref + this.o.leaseMs + 2000 + extra, ref, why };
  }

  private async watchdogLoop(): Promise<void> {
    while (!this.stopLoops) {
      this.watch(false);
      await sleep(250);
    }
  }

  /** Ends readers past their bound (`hung`) and the readers of jobs that never end (`job_stuck`). */
  private watch(final: boolean): void {
    const now = Date.now();
    for (const [rec, abort] of this.readerAborts) {
      if (rec.end !== undefined || rec.startedAt === undefined) continue;
      const job = this.jobs.find((j) => j.id === rec.job)!;
      const b = this.boundOf(job, rec, now);
      if (b !== undefined && now > b.bound) {
        this.violate(
          'hung',
          job.id,
          `still open ${((now - b.ref) / 1000).toFixed(1)} s after ${b.why} (bound ${((b.bound - b.ref) / 1000).toFixed(1)} s): ` +
            `${this.readerSummary(rec)}; ${this.jobSummary(job)}`,
          rec.id,
        );
        rec.end = { at: now, how: 'aborted', error: 'hung' };
        abort.abort();
        this.background.push(this.probe(this.violations[this.violations.length - 1]!, job, rec));
        continue;
      }
      const stuckAfter =
        job.createdAt + job.nominalMs * 3 + 10_000 + overlap(this.unavailability(), job.createdAt, now);
      // A job that still makes tokens is slow, not stuck (60 bursts on one process take their time).
      const progress = Math.max(
        job.createdAt,
        job.countChangedAt ?? 0,
        ...job.readers.map((r) => r.lastTokenAt ?? 0),
      );
      const idle = now - progress > this.o.leaseMs + 5000 + overlap(this.unavailability(), progress, now);
      if (b === undefined && now > stuckAfter && idle) {
        if (!job.stuckReported) {
          job.stuckReported = true;
          this.violate(
            'job_stuck',
            job.id,
            `no end after ${((now - job.createdAt) / 1000).toFixed(1)} s (nominal ${job.nominalMs} ms), ` +
              `no new token since ${this.rel(progress)}; ` +
              `${this.jobSummary(job)}; e.g. ${this.readerSummary(rec)}`,
          );
        }
        rec.end = { at: now, how: 'aborted', error: 'job stuck' };
        abort.abort();
        continue;
      }
      if (final) {
        rec.end = { at: now, how: 'aborted', error: 'run over' };
        this.notes.push(
          `reader ${rec.id} of ${job.id} was still open when the drain ended (${b === undefined ? 'its job still made tokens' : 'within its bound'}): ${this.readerSummary(rec)}`,
        );
        abort.abort();
      }
    }
  }

  /**
   * Evidence for a hung reader: what the process it was reading from, and the job's owner, answer for
   * the job's snapshot right now (a process that does not answer at all is wedged, not the harness).
   */
  private async probe(v: Violation, job: JobRecord, rec: ReaderRecord): Promise<void> {
    const names = new Set([rec.connections[rec.connections.length - 1]?.proc, job.owner.name]);
    const procs = this.upProcs().filter((p) => names.has(p.name));
    if (procs.length === 0) return;
    const at = Date.now();
    const answers = await Promise.all(
      procs.map(async (p) => {
        const res = await httpCall(
          `${p.url}/v1/inference/${encodeURIComponent(job.id)}`,
          'GET',
          undefined,
          2000,
        );
        if ('error' in res) return `${p.name} ${res.error}`;
        const snap = parseJson(res.body);
        return `${p.name} ${res.status}${typeof snap?.state === 'string' ? ` ${snap.state}(${String(snap.token_count)})` : ''}`;
      }),
    );
    v.detail += `; probe at ${this.rel(at)}: GET snapshot on ${answers.join(', ')}`;
  }

  private async statusLoop(): Promise<void> {
    let last = Date.now();
    while (!this.stopLoops) {
      await sleep(250);
      if (Date.now() - last < 5000) continue;
      last = Date.now();
      const open = [...this.readerAborts.keys()].filter((r) => r.end === undefined).length;
      this.log(
        `${this.rel(last)} jobs ${this.jobs.length}, open readers ${open}, tokens checked ${this.tokensChecked}, ` +
          `servers up ${this.upProcs()
            .map((p) => p.name)
            .join(',')}, violations so far ${this.violations.length + this.problems.length}`,
      );
    }
  }

  private async drain(): Promise<void> {
    const start = Date.now();
    const max = this.o.maxJobMs * 2 + this.o.leaseMs + 8000;
    this.log(`draining (at most ${max} ms)`);
    while (Date.now() - start < max) {
      const readersOpen = this.jobs.some((j) => j.pendingReaders > 0);
      const checksOpen = this.jobs.some((j) => j.consistencyStarted && !j.consistencyDone);
      if (!readersOpen && !checksOpen) break;
      await sleep(100);
    }
    this.watch(true);
    const pending = this.jobs.filter((j) => j.consistencyStarted && !j.consistencyDone).length;
    if (pending > 0) this.notes.push(`${pending} agreement checks were still running when the drain ended`);
    this.log(`drained in ${Date.now() - start} ms`);
  }

  // ------------------------------------------------------------ verdicts

  private readerSummary(rec: ReaderRecord): string {
    const conns = rec.connections
      .map(
        (c) =>
          `${c.proc}@${this.rel(c.at)}${c.sentLastEventId !== undefined ? ` LEI=${c.sentLastEventId}` : ''} ${c.status ?? 'no answer yet'} ${c.bytes}B ${c.ended}`,
      )
      .join('; ');
    return (
      `${rec.kind} reader started ${this.rel(rec.startedAt)}${rec.after !== undefined ? ` after=${rec.after}` : ''}, ` +
      `seqs ${rec.firstSeq ?? '-'}..${rec.lastSeq ?? '-'} (${rec.tokens} tokens), ${rec.connectionCount} connection(s): ${conns}`
    );
  }

  private jobSummary(job: JobRecord): string {
    const p = job.params;
    const bits = [
      `owner ${job.owner.name}${job.spec.ownerReplayLimit ? ` (replayLimit ${job.spec.ownerReplayLimit})` : ''}`,
      `max_tokens ${p.max_tokens}`,
      `delay_ms ${p.delay_ms}`,
      ...(p.fail_after !== undefined ? [`fail_after ${p.fail_after}`] : []),
      ...(p.fat ? ['fat tokens'] : []),
      `created ${this.rel(job.createdAt)}${job.createdAt - job.postAt > 500 ? ` (POST sent ${this.rel(job.postAt)})` : ''}`,
    ];
    if (job.endAt !== undefined)
      bits.push(`ended ${job.endState} at ${this.rel(job.endAt)} on ${job.endSeenOn}`);
    for (const c of job.cancels)
      bits.push(`DELETE on ${c.proc} at ${this.rel(c.sentAt)} -> ${c.status}${c.state ? ` ${c.state}` : ''}`);
    const sig = this.ownerSignal(job);
    if (sig) bits.push(`owner ${sig.signal} at ${this.rel(sig.at)}`);
    else {
      const o = job.owner;
      const later = o.signalled ?? (o.exited ? { at: o.exited.at, signal: 'unexpected exit' } : undefined);
      if (later !== undefined && later.at < this.shutdownAt)
        bits.push(`owner ${later.signal} later, at ${this.rel(later.at)}`);
    }
    const loss = this.lossAt(job);
    if (loss !== undefined) bits.push(`data lost at ${this.rel(loss)}`);
    const exposure = this.exposures(job);
    if (exposure.length > 0) bits.push(`faults meanwhile: ${exposure.join(', ')}`);
    const before = this.faults.filter(
      (f) =>
        f.at < job.postAt &&
        (f.window?.to ?? f.at) >= job.postAt - this.o.leaseMs - 1000 &&
        f.kind !== 'server_kill' &&
        f.kind !== 'server_term',
    );
    if (before.length > 0)
      bits.push(`faults just before its POST: ${before.map((f) => this.faultLabel(f)).join(', ')}`);
    if (job.endAt === undefined && job.lastSnapshot !== undefined)
      bits.push(
        `last snapshot ${job.lastSnapshot.state}(${job.lastSnapshot.count}) on ${job.lastSnapshot.proc} at ${this.rel(job.lastSnapshot.at)}`,
      );
    return bits.join(', ');
  }

  /** Redis-level faults during the job's life that can explain a `failed` end. */
  private exposures(job: JobRecord): string[] {
    const end = this.endKnown(job);
    const during = (from: number, to: number): boolean => to >= job.postAt - 200 && from <= end + 200;
    const faults = this.faults
      .filter((f) => {
        if (!during(f.window?.from ?? f.at, f.window?.to ?? f.at)) return false;
        if (f.kind === 'client_kill') return f.proc === job.owner.name || !f.proc?.startsWith('s');
        return f.kind === 'pause' || f.kind.startsWith('restart') || f.kind === 'flushall';
      })
      .map((f) => this.faultLabel(f));
    // The owner's lease lapsed (its own log says its renewal failed or got no answer, after a fault that
    // may have come before the job): other processes may take it for dead and end its jobs.
    const o = job.owner;
    const lapses = [
      ...o.leaseOut,
      ...(o.leaseOutSince !== undefined ? [{ from: o.leaseOutSince, to: end }] : []),
    ]
      .filter((w) => during(w.from, w.to))
      .map((w) => `lease_lapse(${o.name})@${this.rel(w.from)}`);
    return [...faults, ...lapses];
  }

  private faultLabel(f: FaultRecord): string {
    return `${f.kind}${f.kind === 'client_kill' && f.proc ? `(${f.proc})` : ''}@${this.rel(f.at)}`;
  }

  private evaluate(): void {
    const retention = this.o.retentionMs;
    for (const job of this.jobs) {
      const p = job.params;
      const nominal = p.fail_after !== undefined && p.fail_after <= p.max_tokens ? 'failed' : 'completed';
      const sig = this.ownerSignal(job);
      const loss = this.lossAt(job);
      const exposed = this.exposures(job).length > 0;
      const cancel200 = job.cancels.some((c) => c.status === 200);
      const cancelMaybe = job.cancels.some(
        (c) => c.status === 200 || c.status === 'error' || c.status === 503,
      );
      const allowed = new Set<string>([nominal]);
      if (cancelMaybe || sig?.signal === 'SIGTERM') allowed.add('cancelled');
      if (sig !== undefined || loss !== undefined || exposed) allowed.add('failed');
      if (cancel200) {
        allowed.clear();
        allowed.add('cancelled');
        if (loss !== undefined) allowed.add('failed');
      }
      const explain = (): string => this.jobSummary(job);
      const explained = sig !== undefined || loss !== undefined || exposed || job.cancels.length > 0;
      const endRef = this.endKnown(job);

      // 404 is fine once the job may be gone: its data was lost, or it ended at least `retention` ago. When
      // nobody saw the end, it may have ended as early as its producer allows (a POST held up by a Redis
      // pause answers 202 only after the job already ran).
      const earliestEnd = this.earliestEnd(job);
      const goneBy = (t: number): boolean => loss !== undefined || t >= earliestEnd + retention - 300;

      for (const c of job.cancels) {
        if (c.status === 404 && !goneBy(c.at))
          this.violate(
            'vanished',
            job.id,
            `DELETE on ${c.proc} at ${this.rel(c.at)} answered 404; ${explain()}`,
          );
        else if (typeof c.status === 'number' && ![200, 404, 409, 503].includes(c.status))
          this.violate(
            'bad_status',
            job.id,
            `DELETE on ${c.proc} at ${this.rel(c.at)} answered ${c.status} ${c.detail ?? ''}`,
          );
        else if (
          (c.status === 503 || c.status === 'error') &&
          !this.redisFaultNear(c.at, c.at) &&
          !(c.status === 'error' && this.diedNear(c.proc, c.sentAt, c.at))
        )
          this.violate(
            'unexpected_503',
            job.id,
            `DELETE on ${c.proc} at ${this.rel(c.at)}: ${c.status} ${c.detail ?? ''} with no Redis fault near`,
          );
        if (c.status === 200 && c.state !== 'cancelled')
          this.violate('wrong_terminal', job.id, `DELETE on ${c.proc} answered 200 with state ${c.state}`);
      }

      // Readers.
      const ends: Array<{ reader: string; state: string; proc: string }> = [];
      for (const rec of job.readers) {
        for (const [kind, n] of Object.entries(rec.issueCounts)) {
          const first = rec.issues.find((i) => i.kind === kind);
          this.violate(
            kind,
            job.id,
            `${first ? `${this.rel(first.at)} ${first.detail}` : ''}${n! > 1 ? ` (+${n! - 1} more)` : ''}; ${this.readerSummary(rec)}; ${explain()}`,
            rec.id,
          );
        }
        const odd503 = rec.unavailableAt.find((t) => !this.redisFaultNear(t, t));
        if (odd503 !== undefined)
          this.violate(
            'unexpected_503',
            job.id,
            `503 at ${this.rel(odd503)} with no Redis fault near (${rec.unavailableAt.length} 503s in all); ${this.readerSummary(rec)}`,
            rec.id,
          );
        const e = rec.end;
        if (e === undefined || e.how === 'aborted') continue; // hung / stuck were reported when it happened
        const position = rec.lastSeq ?? rec.after ?? -1;
        if (e.how === 'done' || e.how === 'failed' || e.how === 'cancelled') {
          const state = e.how === 'done' ? 'completed' : e.how;
          ends.push({ reader: rec.id, state, proc: e.proc ?? '?' });
          if (!allowed.has(state))
            this.violate(
              'wrong_terminal',
              job.id,
              `reader saw ${e.how}${e.error ? ` (${e.error.slice(0, 160)})` : ''} on ${e.proc} at ${this.rel(e.at)}; expected ${[...allowed].join(' or ')}; ${explain()}`,
              rec.id,
            );
          if (e.how === 'done' && position !== job.spec.cap - 1)
            this.violate(
              'short_done',
              job.id,
              `done after seq ${position}, but the job makes ${job.spec.cap} tokens (last seq ${job.spec.cap - 1}); ${this.readerSummary(rec)}; ${explain()}`,
              rec.id,
            );
          if (e.how === 'failed' && nominal === 'failed' && !explained && position !== job.spec.cap - 1)
            this.violate(
              'short_end',
              job.id,
              `failed (${(e.error ?? '').slice(0, 160)}) after seq ${position}, but the job fails only after ` +
                `${job.spec.cap} tokens and no fault explains an earlier end; ${this.readerSummary(rec)}; ${explain()}`,
              rec.id,
            );
        } else if (e.how === 'refused') {
          if (e.status === 404 && !goneBy(e.at))
            this.violate(
              'vanished',
              job.id,
              `404 from ${e.proc} at ${this.rel(e.at)} while the job should exist; ${this.readerSummary(rec)}; ${explain()}`,
              rec.id,
            );
          if (e.status === 410 && job.spec.ownerReplayLimit === undefined && loss === undefined)
            this.violate(
              'unexpected_410',
              job.id,
              `410 from ${e.proc} at ${this.rel(e.at)} but the owner keeps every token; ${this.readerSummary(rec)}; ${explain()}`,
              rec.id,
            );
        } else if (e.how === 'gave_up') {
          this.violate(
            'client_gave_up',
            job.id,
            `the client stopped on HTTP ${e.status} from ${e.proc} at ${this.rel(e.at)} (${(e.error ?? '').slice(0, 120)}): not an end, not a 404/410; ${this.readerSummary(rec)}`,
            rec.id,
          );
        } else if (e.how === 'bad_status') {
          this.violate(
            'bad_status',
            job.id,
            `HTTP ${e.status ?? '?'} from ${e.proc} at ${this.rel(e.at)}: ${(e.error ?? '').slice(0, 200)}; ${this.readerSummary(rec)}`,
            rec.id,
          );
        }
        if (['done', 'failed', 'cancelled', 'refused'].includes(e.how)) {
          const b = this.boundOf(job, rec, e.at);
          if (b !== undefined && e.at > b.bound)
            this.violate(
              'slow_end',
              job.id,
              `ended (${e.how}) ${((e.at - b.ref) / 1000).toFixed(1)} s after ${b.why}; bound ${((b.bound - b.ref) / 1000).toFixed(1)} s; ${this.readerSummary(rec)}`,
              rec.id,
            );
        }
      }
      const readerStates = new Set(ends.map((x) => x.state));
      if (readerStates.size > 1)
        this.violate(
          'terminal_mismatch',
          job.id,
          `readers disagree: ${ends.map((x) => `${x.reader} ${x.state} via ${x.proc}`).join(', ')}; ${explain()}`,
        );

      // Processes.
      const answers = job.consistency ?? [];
      const terminal = answers.filter((a) => TERMINAL.has(a.state));
      const procStates = new Set(terminal.map((a) => a.state));
      const fmt = (): string =>
        answers
          .map(
            (a) =>
              `${a.proc}:${a.state}${a.count !== undefined && !Number.isNaN(a.count) ? `(${a.count})` : ''}@${this.rel(a.at)}${a.note ? ` ${a.note}` : ''}`,
          )
          .join(', ');
      if (procStates.size > 1)
        this.violate('state_mismatch', job.id, `processes report different ends: ${fmt()}; ${explain()}`);
      if (loss === undefined) {
        const missing = answers.filter((a) => a.state === 'missing' && !goneBy(a.at));
        if (missing.length > 0 && terminal.length > 0)
          this.violate(
            'state_mismatch',
            job.id,
            `${missing.map((a) => a.proc).join(',')} answer 404 while others report an end: ${fmt()}; ${explain()}`,
          );
        const stuck = answers.filter(
          (a) => !TERMINAL.has(a.state) && a.state !== 'missing' && a.state !== 'unknown',
        );
        if (stuck.length > 0 && Number.isFinite(endRef))
          this.violate(
            'state_mismatch',
            job.id,
            `${stuck.map((a) => `${a.proc} still says ${a.state}`).join(', ')} after the job ended: ${fmt()}; ${explain()}`,
          );
      }
      for (const s of procStates)
        if (!allowed.has(s))
          this.violate(
            'wrong_terminal',
            job.id,
            `processes report ${s}; expected ${[...allowed].join(' or ')}: ${fmt()}; ${explain()}`,
          );
      if (procStates.size === 1 && readerStates.size === 1) {
        const [ps] = procStates;
        const [rs] = readerStates;
        if (ps !== rs)
          this.violate(
            'terminal_mismatch',
            job.id,
            `readers saw ${rs} (${ends.map((x) => x.reader).join(',')}) but processes report ${ps}: ${fmt()}; ${explain()}`,
          );
      }
      for (const a of terminal)
        if (
          a.state === 'completed' &&
          a.count !== undefined &&
          !Number.isNaN(a.count) &&
          a.count !== p.max_tokens
        )
          this.violate(
            'short_done',
            job.id,
            `${a.proc} reports completed with token_count ${a.count}, max_tokens ${p.max_tokens}; ${explain()}`,
          );
    }
  }
}

// ---------------------------------------------------------------- the report as text

/** The report as a table: faults, counts, violations by kind, then up to `details` violations. */
export function formatReport(report: ChaosReport, details = 20): string {
  const lines: string[] = [];
  const row = (k: string, v: string | number): void =>
    void lines.push(`  ${k.padEnd(22)} ${String(v).padStart(8)}`);
  lines.push(
    `chaos run: seed ${report.seed}, mode ${report.mode}, ${Math.round(report.durationMs / 1000)} s active, ` +
      `faults ${report.faultsEnabled ? 'on' : 'off'}, stress ${report.stress ? 'on' : 'off'}, ` +
      `${(report.elapsedMs / 1000).toFixed(1)} s in all, prefix ${report.prefix}`,
  );
  lines.push('faults injected');
  const kinds = Object.keys(report.faults).sort();
  if (kinds.length === 0) lines.push('  (none)');
  for (const k of kinds) row(k, report.faults[k]!);
  lines.push('workload');
  row('jobs', report.jobs);
  row('readers', report.readers);
  row('tokens checked', report.tokensChecked);
  lines.push('violations by kind');
  const byKind = new Map<string, number>();
  for (const v of report.violations) byKind.set(v.kind, (byKind.get(v.kind) ?? 0) + 1);
  if (byKind.size === 0) lines.push('  (none)');
  for (const [k, n] of [...byKind.entries()].sort((a, b) => b[1] - a[1])) row(k, n);
  if (report.violations.length > 0) {
    lines.push(
      `first ${Math.min(details, report.violations.length)} of ${report.violations.length} violations`,
    );
    // One or two of each kind first, so every kind shows.
    const shown: typeof report.violations = [];
    for (const k of byKind.keys()) shown.push(...report.violations.filter((v) => v.kind === k).slice(0, 2));
    for (const v of report.violations) if (!shown.includes(v)) shown.push(v);
    for (const v of shown.slice(0, details))
      lines.push(`  [${v.kind}] job ${v.job}${v.reader ? ` reader ${v.reader}` : ''}: ${v.detail}`);
  }
  if (report.notes.length > 0) {
    lines.push('notes');
    for (const n of report.notes.slice(0, 15)) lines.push(`  ${n}`);
    if (report.notes.length > 15) lines.push(`  ... ${report.notes.length - 15} more`);
  }
  return lines.join('\n');
}
