/**
 * The two kinds of reader the harness runs against a job: a raw SSE reader over `node:http` written here
 * (incremental parser, Last-Event-ID resume, byte-exact cuts, stalls that build write backpressure,
 * backoff on 503), and the project's own client (`streamJob` over the `eventsource` package, given an
 * EventSource whose fetch picks a live server per connection and can cut the body at a byte).
 *
 * Every token goes through a {@link TokenChecker}; every reader records how it ended and when. Nothing
 * here waits without a bound: the run's AbortSignal ends every reader.
 */
import { request, type IncomingMessage } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import { EventSource } from 'eventsource';
import {
  ClientError,
  JobCancelledError,
  JobFailedError,
  streamJob,
  type EventSourceConstructor,
} from '../../src/client/index.js';
import type { Rng } from './prng.js';
import type { ServerProc } from './servers.js';

/** What a reader needs to know about its job to check every token. */
export interface JobSpec {
  id: string;
  words: string[];
  /** Tokens the producer makes at most (min of max_tokens and fail_after). */
  cap: number;
  /** The owner's replayLimit, when it has one: a fresh reader may then start past seq 0. */
  ownerReplayLimit: number | undefined;
}

export type ReaderIssueKind =
  'gap' | 'duplicate' | 'wrong_token' | 'extra_token' | 'bad_event' | 'after_terminal';

export interface ReaderIssue {
  kind: ReaderIssueKind;
  at: number;
  detail: string;
}

export type ReaderEndHow =
  | 'done'
  | 'failed'
  | 'cancelled'
  | 'refused' // 404 or 410
  | 'gave_up' // the client stopped on a status other than 404/410 (e.g. 503)
  | 'bad_status'
  | 'aborted'; // the harness ended it (hung, or the run is over)

export interface ReaderEnd {
  at: number;
  how: ReaderEndHow;
  status?: number;
  error?: string;
  proc?: string;
}

export interface ConnectionNote {
  proc: string;
  at: number;
  sentLastEventId?: string;
  status?: number;
  bytes: number;
  ended: string;
}

export interface ReaderPlan {
  id: string;
  kind: 'raw' | 'client';
  /** ms after the job's POST answered. */
  startDelayMs: number;
  /** Resume point: undefined for a fresh reader, 'tail' / a fraction to pick at start from what is known. */
  resume: undefined | { pick: number };
  /** Raw readers: send the first resume point as `Last-Event-ID` or `?after=`. */
  resumeVia: 'header' | 'query';
  /** Byte offsets at which the 1st, 2nd... connection is cut. */
  cuts: number[];
  /** Raw readers: after this many bytes, stop reading for `ms` (builds server-side write backpressure). */
  stalls: Array<{ atByte: number; ms: number }>;
  /** Raw readers: wait before reconnecting after a cut or a close. */
  reconnectDelayMs: number;
}

export interface ReaderRecord {
  id: string;
  job: string;
  kind: 'raw' | 'client';
  plannedAt: number;
  startedAt?: number;
  /** The resume point it started with (undefined: fresh). */
  after?: number;
  firstSeq?: number;
  lastSeq?: number;
  /** When its last token arrived (a reader that still makes progress is not hung). */
  lastTokenAt?: number;
  tokens: number;
  /** When it was answered 503 (raw readers back off and retry). */
  unavailableAt: number[];
  issues: ReaderIssue[];
  issueCounts: Partial<Record<ReaderIssueKind, number>>;
  connections: ConnectionNote[];
  connectionCount: number;
  /** Times of reconnections (every connection after the first). */
  reconnectAt: number[];
  /**
   * Client readers: when a whole `retry:` field of the server first reached the EventSource. It waits
   * that long (1 s) before each reconnection from then on; before, its own default, 3 s.
   */
  retryKnownAt?: number;
  /** Windows during which this reader stopped reading on purpose. */
  stalls: Array<{ from: number; to: number }>;
  cutsDone: number;
  /** When it saw its terminal event, refusal or the end the harness forced. */
  end?: ReaderEnd;
  /** First time a terminal of this job reached this reader. */
  terminalSeenAt?: number;
}

const MAX_ISSUES = 6;
const MAX_CONNECTION_NOTES = 12;

export function newRecord(plan: ReaderPlan, job: string, now: number): ReaderRecord {
  return {
    id: plan.id,
    job,
    kind: plan.kind,
    plannedAt: now + plan.startDelayMs,
    tokens: 0,
    unavailableAt: [],
    issues: [],
    issueCounts: {},
    connections: [],
    connectionCount: 0,
    reconnectAt: [],
    stalls: [],
    cutsDone: 0,
  };
}

function issue(rec: ReaderRecord, kind: ReaderIssueKind, detail: string): void {
  rec.issueCounts[kind] = (rec.issueCounts[kind] ?? 0) + 1;
  if (rec.issues.length < MAX_ISSUES) rec.issues.push({ kind, at: Date.now(), detail });
}

/**
 * Checks one reader's tokens: contiguous seqs from its resume point (a fresh reader from 0, or from where
 * the owner's bounded buffer starts), each token `words[seq % n]`, no duplicate, nothing past what the
 * producer makes.
 */
export class TokenChecker {
  constructor(
    private readonly rec: ReaderRecord,
    private readonly job: JobSpec,
    private readonly count: (n: number) => void,
  ) {}

  onToken(seq: number, token: unknown): void {
    const rec = this.rec;
    this.count(1);
    const expectedToken = this.job.words[seq % this.job.words.length];
    if (token !== expectedToken)
      issue(
        rec,
        'wrong_token',
        `seq ${seq}: got ${JSON.stringify(token)?.slice(0, 80)}, the producer made ${JSON.stringify(expectedToken)?.slice(0, 80)}`,
      );
    if (seq >= this.job.cap)
      issue(
        rec,
        'extra_token',
        `seq ${seq}: the producer makes only ${this.job.cap} tokens (seq 0..${this.job.cap - 1})`,
      );
    const last = rec.lastSeq ?? rec.after;
    if (last === undefined) {
      // A fresh reader: from 0, or from the first seq a bounded buffer still keeps.
      const limit = this.job.ownerReplayLimit;
      if (seq !== 0 && !(limit !== undefined && seq + limit <= this.job.cap))
        issue(
          rec,
          'gap',
          `fresh reader: first token is seq ${seq}, expected seq 0` +
            (limit !== undefined
              ? ` (owner keeps ${limit}, job makes ${this.job.cap})`
              : ' (no replay limit on the owner)'),
        );
    } else if (seq <= last) {
      issue(rec, 'duplicate', `seq ${seq} again after seq ${last}`);
      return;
    } else if (seq !== last + 1) {
      issue(
        rec,
        'gap',
        `after seq ${last} came seq ${seq}: ${seq - last - 1} token(s) missing (seq ${last + 1}..${seq - 1}) without a 410`,
      );
    }
    if (rec.firstSeq === undefined) rec.firstSeq = seq;
    rec.lastSeq = seq;
    rec.lastTokenAt = Date.now();
    rec.tokens++;
  }
}

/** Picks a live server for a (re)connection. */
export type ServerPicker = () => ServerProc | undefined;

export interface ReaderContext {
  plan: ReaderPlan;
  rec: ReaderRecord;
  job: JobSpec;
  pick: ServerPicker;
  rng: Rng;
  signal: AbortSignal;
  countTokens: (n: number) => void;
}

// ---------------------------------------------------------------- SSE parsing

export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

/** An incremental SSE parser (LF and CRLF line ends; comments and retry ignored). */
export class SseParser {
  private buf = '';
  private event = '';
  private data: string[] = [];
  private id: string | undefined;

  push(text: string): SseEvent[] {
    this.buf += text;
    const out: SseEvent[] = [];
    let pos = 0;
    for (;;) {
      const nl = this.buf.indexOf('\n', pos);
      if (nl < 0) break;
      let line = this.buf.slice(pos, nl);
      pos = nl + 1;
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (this.data.length > 0) {
          const ev: SseEvent = {
            event: this.event === '' ? 'message' : this.event,
            data: this.data.join('\n'),
          };
          if (this.id !== undefined) ev.id = this.id;
          out.push(ev);
        }
        this.event = '';
        this.data = [];
        this.id = undefined;
        continue;
      }
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') this.event = value;
      else if (field === 'data') this.data.push(value);
      else if (field === 'id') this.id = value;
    }
    this.buf = this.buf.slice(pos);
    return out;
  }
}

// ---------------------------------------------------------------- raw reader

type Outcome =
  | { kind: 'terminal'; how: 'done' | 'failed' | 'cancelled'; error?: string }
  | { kind: 'status'; status: number; body: string }
  | { kind: 'closed' } // the response ended without a terminal event
  | { kind: 'cut' }
  | { kind: 'neterror'; detail: string }
  | { kind: 'aborted' };

const HEADERS_TIMEOUT_MS = 10_000;

function sleepAbortable(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

function note(rec: ReaderRecord, c: ConnectionNote): ConnectionNote {
  rec.connectionCount++;
  if (rec.connectionCount > 1) rec.reconnectAt.push(c.at);
  if (rec.connections.length >= MAX_CONNECTION_NOTES) rec.connections.splice(1, 1);
  rec.connections.push(c);
  return c;
}

/** Handles one parsed event; returns the terminal outcome when it is one. */
function handleEvent(
  ctx: ReaderContext,
  checker: TokenChecker,
  ev: SseEvent,
  state: { lastEventId: string | undefined },
): Outcome | undefined {
  const rec = ctx.rec;
  if (ev.event === 'token') {
    if (ev.id === undefined || !/^\d+$/.test(ev.id)) {
      issue(rec, 'bad_event', `token event without a numeric id: ${JSON.stringify(ev).slice(0, 120)}`);
      return undefined;
    }
    state.lastEventId = ev.id;
    let token: unknown;
    try {
      token = JSON.parse(ev.data);
    } catch {
      issue(rec, 'bad_event', `token ${ev.id}: data is not JSON: ${ev.data.slice(0, 80)}`);
      return undefined;
    }
    checker.onToken(Number(ev.id), token);
    return undefined;
  }
  if (ev.event === 'done') {
    if (ev.data !== '{"state":"completed"}')
      issue(rec, 'bad_event', `done event with data ${ev.data.slice(0, 120)}`);
    return { kind: 'terminal', how: 'done' };
  }
  if (ev.event === 'error') {
    let body: { state?: unknown; error?: unknown } = {};
    try {
      body = JSON.parse(ev.data) as typeof body;
    } catch {
      issue(rec, 'bad_event', `error event whose data is not JSON: ${ev.data.slice(0, 120)}`);
    }
    if (body.state !== 'failed' && body.state !== 'cancelled') {
      issue(
        rec,
        'bad_event',
        `error event with state ${JSON.stringify(body.state)}: ${ev.data.slice(0, 120)}`,
      );
      return { kind: 'terminal', how: 'failed', error: String(body.error ?? ev.data) };
    }
    return { kind: 'terminal', how: body.state, error: String(body.error ?? '') };
  }
  issue(rec, 'bad_event', `unexpected event type ${JSON.stringify(ev.event)}: ${ev.data.slice(0, 80)}`);
  return undefined;
}

function connectRaw(
  ctx: ReaderContext,
  proc: ServerProc,
  lastEventId: string | undefined,
  query: string,
  cutAt: number | undefined,
  checker: TokenChecker,
  state: { lastEventId: string | undefined },
): Promise<Outcome> {
  const rec = ctx.rec;
  const headers: Record<string, string> = { Accept: 'text/event-stream' };
  if (lastEventId !== undefined) headers['Last-Event-ID'] = lastEventId;
  const c = note(rec, {
    proc: proc.name,
    at: Date.now(),
    ...(lastEventId !== undefined ? { sentLastEventId: lastEventId } : {}),
    bytes: 0,
    ended: 'open',
  });
  const stalls = [...ctx.plan.stalls];
  return new Promise<Outcome>((resolve) => {
    let settled = false;
    let terminal: Outcome | undefined;
    let headerTimer: ReturnType<typeof setTimeout> | undefined;
    let lingerTimer: ReturnType<typeof setTimeout> | undefined;
    const url = `${proc.url}/v1/inference/${encodeURIComponent(ctx.job.id)}/stream${query}`;
    const req = request(url, { agent: false, headers });
    const finish = (o: Outcome, how: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(headerTimer);
      clearTimeout(lingerTimer);
      ctx.signal.removeEventListener('abort', onAbort);
      c.ended = how;
      req.destroy();
      resolve(o);
    };
    const onAbort = (): void => finish({ kind: 'aborted' }, 'aborted by the harness');
    ctx.signal.addEventListener('abort', onAbort);
    if (ctx.signal.aborted) return onAbort();
    headerTimer = setTimeout(
      () => finish({ kind: 'neterror', detail: 'no response headers within 10 s' }, 'header timeout'),
      HEADERS_TIMEOUT_MS,
    );
    req.on('error', (e) => finish(terminal ?? { kind: 'neterror', detail: e.message }, `error ${e.message}`));
    req.on('response', (res: IncomingMessage) => {
      clearTimeout(headerTimer);
      c.status = res.statusCode ?? 0;
      if (res.statusCode !== 200) {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (t: string) => (body = (body + t).slice(0, 2000)));
        res.on('end', () =>
          finish({ kind: 'status', status: res.statusCode ?? 0, body }, `status ${res.statusCode}`),
        );
        res.on('error', () =>
          finish({ kind: 'status', status: res.statusCode ?? 0, body }, `status ${res.statusCode}`),
        );
        return;
      }
      const type = String(res.headers['content-type'] ?? '');
      if (!type.startsWith('text/event-stream')) {
        finish({ kind: 'status', status: 200, body: `content-type ${type}` }, 'not an event stream');
        return;
      }
      const decoder = new StringDecoder('utf8');
      const parser = new SseParser();
      let bytes = 0;
      res.on('data', (buf: Buffer) => {
        if (settled) return;
        let chunk = buf;
        let cutNow = false;
        if (cutAt !== undefined && terminal === undefined && bytes + chunk.length >= cutAt) {
          chunk = chunk.subarray(0, Math.max(0, cutAt - bytes));
          cutNow = true;
        }
        bytes += chunk.length;
        c.bytes = bytes;
        for (const ev of parser.push(decoder.write(chunk))) {
          if (terminal !== undefined) {
            issue(rec, 'after_terminal', `event ${ev.event} ${ev.id ?? ''} after the terminal event`);
            continue;
          }
          const t = handleEvent(ctx, checker, ev, state);
          if (t !== undefined) {
            terminal = t;
            rec.terminalSeenAt ??= Date.now();
            // Anything after the terminal event is a violation: keep reading briefly for it.
            lingerTimer = setTimeout(() => finish(t, 'terminal'), 300);
          }
        }
        if (cutNow && terminal === undefined) {
          rec.cutsDone++;
          finish({ kind: 'cut' }, `cut by the harness at byte ${cutAt}`);
          return;
        }
        const stall = stalls[0];
        if (stall !== undefined && bytes >= stall.atByte && terminal === undefined) {
          stalls.shift();
          const from = Date.now();
          res.pause();
          setTimeout(() => {
            rec.stalls.push({ from, to: Date.now() });
            if (!settled) res.resume();
          }, stall.ms);
        }
      });
      res.on('end', () =>
        finish(terminal ?? { kind: 'closed' }, terminal ? 'terminal' : 'closed by the server'),
      );
      res.on('error', (e) =>
        finish(terminal ?? { kind: 'neterror', detail: e.message }, `error ${e.message}`),
      );
      res.on('aborted', () => finish(terminal ?? { kind: 'neterror', detail: 'aborted' }, 'aborted'));
    });
    req.end();
  });
}

/** The raw SSE reader: reconnects with Last-Event-ID until a terminal event, a 404/410 or the run's end. */
export async function runRawReader(ctx: ReaderContext): Promise<void> {
  const { rec, plan } = ctx;
  rec.startedAt = Date.now();
  const checker = new TokenChecker(rec, ctx.job, ctx.countTokens);
  const state: { lastEventId: string | undefined } = {
    lastEventId: rec.after === undefined ? undefined : String(rec.after),
  };
  let first = true;
  let backoff = 100;
  let connection = 0;
  for (;;) {
    if (ctx.signal.aborted) {
      rec.end ??= { at: Date.now(), how: 'aborted' };
      return;
    }
    const proc = ctx.pick();
    if (proc === undefined) {
      await sleepAbortable(200, ctx.signal);
      continue;
    }
    // The first resume point goes in the header or the query as planned; every later one in the header.
    const viaQuery = first && plan.resumeVia === 'query' && state.lastEventId !== undefined;
    const query = viaQuery ? `?after=${state.lastEventId}` : '';
    const header = viaQuery ? undefined : state.lastEventId;
    first = false;
    const cutAt = plan.cuts[connection];
    connection++;
    const o = await connectRaw(ctx, proc, header, query, cutAt, checker, state);
    switch (o.kind) {
      case 'terminal':
        rec.end = {
          at: rec.terminalSeenAt ?? Date.now(),
          how: o.how,
          proc: proc.name,
          ...(o.error !== undefined ? { error: o.error } : {}),
        };
        return;
      case 'aborted':
        rec.end ??= { at: Date.now(), how: 'aborted' };
        return;
      case 'status':
        if (o.status === 404 || o.status === 410) {
          rec.end = {
            at: Date.now(),
            how: 'refused',
            status: o.status,
            proc: proc.name,
            error: o.body.slice(0, 200),
          };
          return;
        }
        if (o.status === 503) {
          if (rec.unavailableAt.length < 50) rec.unavailableAt.push(Date.now());
          await sleepAbortable(backoff, ctx.signal);
          backoff = Math.min(backoff * 2, 1000);
          continue;
        }
        rec.end = {
          at: Date.now(),
          how: 'bad_status',
          status: o.status,
          proc: proc.name,
          error: o.body.slice(0, 200),
        };
        return;
      case 'closed':
      case 'cut':
      case 'neterror':
        backoff = 100;
        await sleepAbortable(plan.reconnectDelayMs, ctx.signal);
        continue;
    }
  }
}

// ---------------------------------------------------------------- the project's client

interface CutReader {
  read(): Promise<{ done: false; value: Uint8Array } | { done: true; value?: Uint8Array }>;
  cancel(): Promise<void>;
}

/** The project's client, `streamJob`, over an EventSource whose fetch picks a live server per connection. */
export function runClientReader(ctx: ReaderContext): Promise<void> {
  const { rec, plan } = ctx;
  rec.startedAt = Date.now();
  const checker = new TokenChecker(rec, ctx.job, ctx.countTokens);
  let connection = 0;
  let lastStatus: number | undefined;
  let lastProc: string | undefined;
  const chaosFetch = async (
    input: string | URL,
    init: { headers: Record<string, string>; signal?: unknown } & Record<string, unknown>,
  ): Promise<unknown> => {
    const proc = ctx.pick();
    if (proc === undefined) throw new TypeError('chaos: no live server right now');
    const u = new URL(String(input));
    const target = `${proc.url}${u.pathname}${u.search}`;
    const sent = init.headers['Last-Event-ID'];
    const c = note(rec, {
      proc: proc.name,
      at: Date.now(),
      ...(sent !== undefined ? { sentLastEventId: sent } : {}),
      bytes: 0,
      ended: 'open',
    });
    lastProc = proc.name;
    const cutAt = plan.cuts[connection];
    connection++;
    // A bound on the wait for headers only (the body may stream for long).
    const headersAbort = new AbortController();
    const outer = init.signal as AbortSignal | undefined;
    const onOuter = (): void => headersAbort.abort();
    outer?.addEventListener('abort', onOuter);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      headersAbort.abort();
    }, HEADERS_TIMEOUT_MS);
    let res: Response;
    try {
      res = await fetch(target, { ...(init as RequestInit), signal: headersAbort.signal });
    } catch (e) {
      c.ended = timedOut ? 'no response headers within 10 s' : `fetch failed: ${(e as Error).message}`;
      // EventSource takes an AbortError for its own close() and never reconnects: our timeout must look
      // like the network error it stands for, so the client reconnects as it would after one.
      if (timedOut) throw new TypeError('chaos: no response headers within 10 s');
      throw e;
    } finally {
      clearTimeout(timer);
    }
    c.status = res.status;
    lastStatus = res.status;
    const body = res.body;
    if (body === null || res.status !== 200) {
      c.ended = `status ${res.status}`;
      return res;
    }
    const inner = body.getReader();
    let bytes = 0;
    let cut = false;
    // The stream's first bytes, until they hold a whole `retry:` field (the EventSource applies it then).
    let head = '';
    const seeRetry = (chunk: Uint8Array): void => {
      if (rec.retryKnownAt !== undefined || head.length > 64) return;
      head += Buffer.from(chunk).toString('latin1');
      if (/(^|\n)retry: *\d+\r?\n/.test(head)) rec.retryKnownAt = Date.now();
    };
    const reader: CutReader = {
      read: async () => {
        if (cut) {
          await inner.cancel().catch(() => undefined);
          throw new Error(`chaos: connection cut at byte ${cutAt}`);
        }
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await inner.read();
        } catch (e) {
          c.ended = `error ${(e as Error).message}`;
          throw e;
        }
        if (r.done) {
          c.ended = 'closed by the server';
          outer?.removeEventListener('abort', onOuter);
          return { done: true };
        }
        const v = r.value;
        if (cutAt !== undefined && bytes + v.length >= cutAt) {
          const part = v.subarray(0, Math.max(0, cutAt - bytes));
          seeRetry(part);
          bytes += part.length;
          c.bytes = bytes;
          cut = true;
          rec.cutsDone++;
          c.ended = `cut by the harness at byte ${cutAt}`;
          return { done: false, value: part };
        }
        seeRetry(v);
        bytes += v.length;
        c.bytes = bytes;
        return { done: false, value: v };
      },
      cancel: () => inner.cancel(),
    };
    return {
      body: { getReader: () => reader },
      url: res.url,
      status: res.status,
      redirected: res.redirected,
      headers: res.headers,
    };
  };
  class ChaosEventSource extends EventSource {
    constructor(url: string) {
      super(url, { fetch: chaosFetch as never });
    }
  }
  const url = `http://chaos.invalid/v1/inference/${encodeURIComponent(ctx.job.id)}/stream`;
  return new Promise<void>((resolve) => {
    let finished = false;
    const end = (e: ReaderEnd): void => {
      if (finished) return;
      finished = true;
      rec.end ??= e;
      ctx.signal.removeEventListener('abort', onAbort);
      subscription.unsubscribe();
      resolve();
    };
    const onAbort = (): void => end({ at: Date.now(), how: 'aborted' });
    const subscription = streamJob<string>(url, {
      EventSource: ChaosEventSource as unknown as EventSourceConstructor,
      ...(rec.after !== undefined ? { after: rec.after } : {}),
    }).subscribe({
      next: ({ seq, token }) => checker.onToken(seq, token),
      complete: () => {
        rec.terminalSeenAt ??= Date.now();
        end({ at: Date.now(), how: 'done', ...(lastProc ? { proc: lastProc } : {}) });
      },
      error: (e: unknown) => {
        const at = Date.now();
        const proc = lastProc ? { proc: lastProc } : {};
        if (e instanceof JobFailedError || e instanceof JobCancelledError) {
          rec.terminalSeenAt ??= at;
          end({ at, how: e instanceof JobFailedError ? 'failed' : 'cancelled', error: e.message, ...proc });
        } else if (e instanceof ClientError && e.code === 'STREAM_REFUSED') {
          const status = lastStatus ?? 0;
          end({
            at,
            how: status === 404 || status === 410 ? 'refused' : status === 200 ? 'bad_status' : 'gave_up',
            status,
            error: e.message,
            ...proc,
          });
        } else
          end({
            at,
            how: 'bad_status',
            error: `client error: ${(e as Error)?.message ?? String(e)}`,
            ...proc,
          });
      },
    });
    if (finished) subscription.unsubscribe();
    ctx.signal.addEventListener('abort', onAbort);
    if (ctx.signal.aborted) onAbort();
  });
}
