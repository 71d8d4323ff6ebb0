/**
 * The fault checker's own parts, so that its bugs cannot pass for the library's: the incremental SSE
 * parser against a stream cut at every byte, the token checker's verdicts, and the seeded PRNG.
 */
import { StringDecoder } from 'node:string_decoder';
import { nearestFault, reconnectWaits } from './harness.js';
import { Rng } from './prng.js';
import { parseSeeds, summaryTable } from './sweep.js';
import {
  SseParser,
  TokenChecker,
  newRecord,
  type JobSpec,
  type ReaderPlan,
  type SseEvent,
} from './readers.js';

const plan: ReaderPlan = {
  id: 'r0.0',
  kind: 'raw',
  startDelayMs: 0,
  resume: undefined,
  resumeVia: 'header',
  cuts: [],
  stalls: [],
  reconnectDelayMs: 0,
};

function checker(spec: Partial<JobSpec> = {}, after?: number) {
  const rec = newRecord(plan, 'job-x', Date.now());
  if (after !== undefined) rec.after = after;
  const job: JobSpec = { id: 'job-x', words: ['a', 'b', 'c'], cap: 10, ownerReplayLimit: undefined, ...spec };
  let counted = 0;
  const c = new TokenChecker(rec, job, (n) => (counted += n));
  return { rec, c, counted: () => counted };
}

describe('SseParser', () => {
  const words = ['naïve', '日本語', '🙂', '"quoted"', 'back\\slash', 'data:', 'plain'];
  const wire =
    'retry: 1000\n\n: ping\n\n' +
    words.map((w, i) => `id: ${i}\nevent: token\ndata: ${JSON.stringify(w)}\n\n`).join('') +
    'event: error\ndata: {"state":"failed","error":"x"}\n\n';
  const bytes = Buffer.from(wire, 'utf8');

  test('gives the same events however the bytes are split, multi-byte characters included', () => {
    const whole = new SseParser().push(wire);
    expect(whole.map((e) => e.event)).toEqual([...words.map(() => 'token'), 'error']);
    expect(whole.slice(0, -1).map((e) => JSON.parse(e.data))).toEqual(words);
    for (let cut = 1; cut < bytes.length; cut++) {
      const parser = new SseParser();
      const decoder = new StringDecoder('utf8');
      const out: SseEvent[] = [
        ...parser.push(decoder.write(bytes.subarray(0, cut))),
        ...parser.push(decoder.write(bytes.subarray(cut))),
      ];
      expect(out).toEqual(whole);
    }
  });

  test('a stream cut mid-event gives only the complete events (the rest is dropped with the connection)', () => {
    const cut = wire.indexOf('id: 3');
    const events = new SseParser().push(wire.slice(0, cut + 8));
    expect(events.map((e) => e.id)).toEqual(['0', '1', '2']);
  });

  test('CRLF line ends and multi-line data', () => {
    const events = new SseParser().push('id: 1\r\nevent: token\r\ndata: a\r\ndata: b\r\n\r\n');
    expect(events).toEqual([{ id: '1', event: 'token', data: 'a\nb' }]);
  });
});

describe('TokenChecker', () => {
  test('a contiguous run from 0 has no issue', () => {
    const { rec, c, counted } = checker();
    for (let s = 0; s < 10; s++) c.onToken(s, 'abc'[s % 3]);
    expect(rec.issues).toEqual([]);
    expect(rec.lastSeq).toBe(9);
    expect(counted()).toBe(10);
  });

  test('gap, duplicate, wrong token and a seq past the producer are each reported', () => {
    const { rec, c } = checker();
    c.onToken(0, 'a');
    c.onToken(2, 'c');
    c.onToken(2, 'c');
    c.onToken(3, 'x');
    c.onToken(10, 'b');
    expect(rec.issues.map((i) => i.kind)).toEqual(['gap', 'duplicate', 'wrong_token', 'extra_token', 'gap']);
  });

  test('a resumed reader starts right after its resume point', () => {
    const ok = checker({}, 4);
    ok.c.onToken(5, 'c');
    expect(ok.rec.issues).toEqual([]);
    const bad = checker({}, 4);
    bad.c.onToken(7, 'b');
    expect(bad.rec.issues.map((i) => i.kind)).toEqual(['gap']);
  });

  test('a fresh reader may start past 0 only where the owner bounds its replay buffer', () => {
    const bounded = checker({ cap: 1000, ownerReplayLimit: 200 });
    bounded.c.onToken(500, 'c');
    expect(bounded.rec.issues).toEqual([]);
    const beyond = checker({ cap: 1000, ownerReplayLimit: 200 });
    beyond.c.onToken(900, 'a');
    expect(beyond.rec.issues.map((i) => i.kind)).toEqual(['gap']);
    const unbounded = checker({ cap: 1000 });
    unbounded.c.onToken(500, 'c');
    expect(unbounded.rec.issues.map((i) => i.kind)).toEqual(['gap']);
  });
});

describe('Rng', () => {
  test('one seed, one sequence; forks are independent of each other', () => {
    const a = new Rng('s');
    const b = new Rng('s');
    expect(Array.from({ length: 5 }, () => a.next())).toEqual(Array.from({ length: 5 }, () => b.next()));
    const f1 = new Rng('s').fork('faults');
    const other = new Rng('s');
    other.next();
    expect(other.fork('faults').next()).toBe(f1.next());
    const r = new Rng('x');
    for (let i = 0; i < 1000; i++) {
      const v = r.int(3, 7);
      expect(v).toBeGreaterThanOrEqual(3);
      expect(v).toBeLessThanOrEqual(7);
    }
  });
});

describe('nearestFault', () => {
  const faults = [
    { kind: 'pause', at: 100, detail: 'CLIENT PAUSE' },
    { kind: 'server_kill', at: 200, proc: 's1#0', detail: 'SIGKILL' },
    { kind: 'client_kill', at: 300, proc: 's2#0', detail: 'CLIENT KILL' },
    { kind: 'flushall', at: 400, detail: 'FLUSHALL' },
    { kind: 'server_kill', at: 500, proc: 's0#0', detail: 'SIGKILL' },
  ];
  test("names the last fault before the violation on the job's servers or on Redis", () => {
    const servers = new Set(['s0#0', 's2#0']);
    expect(nearestFault(faults, { from: 0, until: 450, servers })?.kind).toBe('flushall');
    expect(nearestFault(faults, { from: 0, until: 350, servers })?.kind).toBe('client_kill');
    // A fault on a server that neither runs the job nor serves its reader does not count.
    expect(nearestFault(faults, { from: 0, until: 250, servers })?.kind).toBe('pause');
    expect(nearestFault(faults, { from: 0, until: 600, servers })?.kind).toBe('server_kill');
    expect(nearestFault(faults, { from: 150, until: 199, servers })).toBeUndefined();
  });
});

describe('chaos:sweep', () => {
  test('reads seed lists and ranges, and refuses a bad one', () => {
    expect(parseSeeds('1-3')).toEqual([1, 2, 3]);
    expect(parseSeeds('5,7,23')).toEqual([5, 7, 23]);
    expect(parseSeeds('1-2,2,9')).toEqual([1, 2, 9]);
    expect(() => parseSeeds('3-1')).toThrow(/end is before the start/);
    expect(() => parseSeeds('x')).toThrow(/bad seed list/);
  });
  test('the summary table has a row per seed, violations by kind, and the totals', () => {
    const base = {
      mode: 'single' as const,
      durationMs: 1,
      faultsEnabled: true,
      stress: true,
      prefix: 'p',
      readers: 1,
      notes: [],
      elapsedMs: 1,
    };
    const table = summaryTable([
      { ...base, seed: 1, faults: { pause: 2, flushall: 1 }, jobs: 10, tokensChecked: 500, violations: [] },
      {
        ...base,
        seed: 2,
        faults: { pause: 1 },
        jobs: 5,
        tokensChecked: 100,
        violations: [
          { kind: 'wrong_terminal', job: 'j', detail: '' },
          { kind: 'wrong_terminal', job: 'k', detail: '' },
        ],
      },
    ]).split('\n');
    expect(table[0]).toMatch(/seed .*jobs .*tokens checked .*faults .*violations/);
    expect(table[2]).toMatch(/^\| 1 +\| 10 +\| 500 +\| 3 +\| 0 /);
    expect(table[3]).toMatch(/\| wrong_terminal 2 +\|$/);
    expect(table[4]).toMatch(/^\| all +\| 15 +\| 600 +\| 4 +\| 2 /);
  });
});

describe('reconnectWaits: what a reader waits on its own before reconnecting', () => {
  const client = (): ReturnType<typeof newRecord> => newRecord({ ...plan, kind: 'client' }, 'job-x', 0);
  const conn = (at: number, ended: string) => ({ proc: 's0#1', at, bytes: 0, ended });

  test('an EventSource that never got a whole retry: field waits its own 3 s, the one pending included', () => {
    const rec = client();
    rec.connections.push(
      conn(100, 'cut by the harness at byte 8'),
      conn(3200, 'cut by the harness at byte 2'),
    );
    rec.reconnectAt.push(3200);
    expect(reconnectWaits(rec, 0, 5000)).toBe(2 * 3100);
  });

  test("once the server's retry: reached it, each reconnection waits about 1 s", () => {
    const rec = client();
    rec.retryKnownAt = 150;
    rec.connections.push(conn(100, 'cut by the harness at byte 40'), conn(1300, 'open'));
    rec.reconnectAt.push(1300);
    expect(reconnectWaits(rec, 0, 2000)).toBe(1100);
  });

  test('raw readers: 400 ms a reconnection after the reference, capped', () => {
    const rec = newRecord(plan, 'job-x', 0);
    rec.reconnectAt.push(50, 200, 300);
    expect(reconnectWaits(rec, 100, 1000)).toBe(800);
  });
});
