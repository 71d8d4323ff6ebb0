/**
 * AI SDK chat on Redis, with a reconnect: the same chats through job-registry's chat routes
 * (`createChatHandler` over `redisBackend`) and through the AI SDK's resumable-stream pattern
 * (`resumableStream` / `resumeExistingStream` on ioredis), side by side in one run. The server runs in a
 * peer process (bench/chat-peer.ts, one system per run, a fresh Redis prefix each); the clients run here:
 * N chats at once, each POSTs its message, reads half the answer's deltas, drops the connection, GETs
 * `/api/chat/{chatId}/stream` and reads to `[DONE]` and the end of the response. Ours resumes after the
 * last chunk it got (`Last-Event-ID`); resumable-stream replays the answer from its start, so a chat counts
 * the distinct deltas it needed, and the ones it got twice are a figure of their own. A chat that ends
 * without every delta fails the section. Throughput is the distinct deltas delivered over the run's wall
 * time (first POST to last response's end); CPU is `process.cpuUsage()` of the server process over the
 * run, per distinct delta delivered (the model, HTTP, SSE and Redis client work, GC included).
 */
import { fork } from 'node:child_process';
import { Agent, request, type IncomingMessage } from 'node:http';
import type { Closed, Open, Opened, System } from '../chat-peer.js';
import { waitFor, peerArgs } from '../ipc.js';
import { QUICK, figure, gc, median, ratio, redisAdminOrSkip, report, type Figure } from '../lib.js';

const REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const CHATS = QUICK ? 10 : 100;
const DELTAS = QUICK ? 100 : 500;
const REPS = QUICK ? 3 : 5;
/** Where a reader drops its first connection: the model waits there for the chat's resume. */
const HALF = DELTAS >> 1;
/** A run not done by then (a chat stuck short of its answer) fails the section instead of hanging it. */
const DEADLINE_MS = QUICK ? 60_000 : 300_000;
/** The chat handler's default routes, which the peer serves for both systems. */
const BASE = '/api/chat';
const SYSTEMS: System[] = ['ours', 'resumable'];
const NAMES: Record<System, string> = {
  ours: 'job-registry createChatHandler, redisBackend',
  resumable: 'resumable-stream (ioredis), the AI SDK resumable-stream pattern',
};
const LABEL = `AI SDK chat on Redis, ${CHATS} chats x ${DELTAS} deltas, a reconnect each mid-answer`;

const admin = await redisAdminOrSkip(REDIS, 'chat', 'AI SDK chat');
const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
const server = fork(new URL('../chat-peer.ts', import.meta.url).pathname, [REDIS], {
  execArgv: peerArgs(['--expose-gc', '--import', 'tsx']),
  stdio: 'inherit',
});
server.setMaxListeners(0); // waitFor listens for the peer's exit on every call

/** What one chat's reader got. */
interface Answer {
  /** Text deltas delivered more than once (resumable-stream's replay). */
  duplicates: number;
}

/**
 * One chat: POST, read HALF deltas, drop the connection, resume, read to the end. Resolves once the
 * answer is whole; rejects when it ends short, or a response is not a UI message stream.
 */
function converse(port: number, system: System, chatId: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const got = new Uint32Array(DELTAS);
    let distinct = 0;
    let delivered = 0;
    let lastId: string | undefined;
    let sawFinish = false;
    let sawDone = false;
    let dropped = false;
    let over = false;
    const fail = (why: string): void => {
      if (over) return;
      over = true;
      reject(new Error(`chat: ${system}: chat ${chatId}: ${why}`));
    };
    const block = (text: string): void => {
      let data: string | undefined;
      for (const line of text.split('\n')) {
        if (line.startsWith('id: ')) lastId = line.slice(4);
        else if (line.startsWith('data: ')) data = line.slice(6);
      }
      if (data === undefined) return;
      if (data === '[DONE]') return void (sawDone = true);
      const chunk = JSON.parse(data) as { type: string; delta?: string };
      if (chunk.type === 'finish') sawFinish = true;
      if (chunk.type !== 'text-delta') return;
      // The peer's deltas are ` w<k>`.
      const k = Number(chunk.delta!.slice(2));
      if (!(k >= 0 && k < DELTAS)) return fail(`a delta not of this answer: ${data}`);
      delivered++;
      if (got[k]++ === 0) distinct++;
    };
    const read = (res: IncomingMessage, resumed: boolean): void => {
      if (res.statusCode !== 200 || res.headers['x-vercel-ai-ui-message-stream'] !== 'v1') {
        res.resume();
        return fail(
          `${resumed ? 'the resume' : 'the POST'} answered ${res.statusCode}, not a UI message stream`,
        );
      }
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (text: string) => {
        if (dropped && !resumed) return;
        buf += text;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          block(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
        if (!resumed && distinct >= HALF) {
          dropped = true;
          res.destroy();
          resume();
        }
      });
      res.on('error', (e) => {
        if (!(dropped && !resumed)) fail(`${resumed ? 'the resume' : 'the POST'} failed: ${e.message}`);
      });
      res.on('end', () => {
        if (!resumed)
          return dropped ? undefined : fail(`the answer ended after ${distinct} deltas, before the drop`);
        if (!sawFinish || !sawDone)
          return fail(`the resumed stream ended without finish and [DONE], ${distinct} of ${DELTAS} deltas`);
        if (distinct !== DELTAS) return fail(`${distinct} of ${DELTAS} deltas in all`);
        if (system === 'ours' && delivered !== DELTAS)
          return fail(`${delivered} deltas delivered for ${DELTAS}: a resume by event id repeats none`);
        over = true;
        resolve({ duplicates: delivered - DELTAS });
      });
    };
    const resume = (): void => {
      // The AI SDK's resume sends no position; ours resumes after the last chunk id the reader has.
      const headers: Record<string, string> =
        system === 'ours' && lastId !== undefined ? { 'Last-Event-ID': lastId } : {};
      const get = request(
        { host: '127.0.0.1', port, path: `${BASE}/${encodeURIComponent(chatId)}/stream`, agent, headers },
        (res) => read(res, true),
      );
      get.on('error', (e) => fail(`the resume failed: ${e.message}`));
      get.end();
    };
    const body = JSON.stringify({
      id: chatId,
      messages: [{ id: `u-${chatId}`, role: 'user', parts: [{ type: 'text', text: 'Tell me a story.' }] }],
      trigger: 'submit-message',
    });
    const post = request(
      {
        host: '127.0.0.1',
        port,
        path: BASE,
        method: 'POST',
        agent,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => read(res, false),
    );
    post.on('error', (e) => {
      // Dropping the answer on purpose ends its request too.
      if (!dropped) fail(`the POST failed: ${e.message}`);
    });
    post.end(body);
  });
}

interface Run {
  /** Distinct deltas delivered per second of the run. */
  rate: number;
  /** Server CPU per distinct delta delivered (µs). */
  cpu: number;
  /** Deltas delivered twice, per chat. */
  duplicates: number;
}

function deadline<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`chat: ${what} not done in ${DEADLINE_MS} ms`)), DEADLINE_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function removeKeys(prefix: string): Promise<void> {
  const keys = await admin.keys(`${prefix}*`);
  for (let i = 0; i < keys.length; i += 500) await admin.del(...keys.slice(i, i + 500));
}

let runs = 0;
async function run(system: System): Promise<Run> {
  const prefix = `jrbench:${process.pid}:chat:${++runs}:`;
  try {
    gc();
    const opened = waitFor<Opened>(server, 'opened');
    server.send({ type: 'open', system, prefix, deltas: DELTAS } satisfies Open & { type: string });
    const { port } = await opened;
    const t0 = performance.now();
    const ids = Array.from({ length: CHATS }, (_, i) => `chat-${runs}-${i}`);
    const answers = await deadline(
      Promise.all(ids.map((id) => converse(port, system, id))),
      `${system}: ${CHATS} chats`,
    );
    const seconds = (performance.now() - t0) / 1000;
    const closed = waitFor<Closed>(server, 'closed');
    server.send({ type: 'close' });
    const { cpu, answers: finished } = await closed;
    if (finished !== CHATS)
      throw new Error(`chat: ${system}: ${finished} of ${CHATS} models ran to their end`);
    const delivered = CHATS * DELTAS;
    return {
      rate: delivered / seconds,
      cpu: cpu / delivered,
      duplicates: answers.reduce((n, a) => n + a.duplicates, 0) / CHATS,
    };
  } finally {
    await removeKeys(prefix);
  }
}

const spread = (xs: number[]): string =>
  `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)} - ${Math.max(...xs).toFixed(2)})`;

try {
  await waitFor(server, 'up');
  // Loads and optimizes both systems' code paths (the server's and the clients') before anything counts.
  for (const s of SYSTEMS) await run(s);
  const results: Record<System, Run[]> = { ours: [], resumable: [] };
  for (let rep = 0; rep < REPS; rep++) {
    const order = rep % 2 === 0 ? SYSTEMS : [...SYSTEMS].reverse();
    for (const s of order) results[s].push(await run(s));
  }
  const figures: Figure[] = [];
  for (const s of SYSTEMS) {
    const rs = results[s];
    const at = (what: string): string => `${LABEL}: ${NAMES[s]}, ${what}`;
    figures.push(
      figure(
        at('delivered chunks/s'),
        'chunks/s',
        rs.map((r) => r.rate),
      ),
      figure(
        at('server CPU per delivered chunk'),
        'µs',
        rs.map((r) => r.cpu),
      ),
      figure(
        at('deltas delivered twice per chat'),
        'deltas',
        rs.map((r) => r.duplicates),
      ),
    );
  }
  const o = results.ours;
  const f = results.resumable;
  const ratios = [
    ratio(
      `${LABEL}: delivered chunks/s vs resumable-stream`,
      o.map((r, i) => r.rate / f[i]!.rate),
      5,
      true,
      NAMES.resumable,
    ),
    ratio(
      `${LABEL}: server CPU per chunk vs resumable-stream (at most)`,
      o.map((r, i) => r.cpu / f[i]!.cpu),
      0.5,
      false,
      NAMES.resumable,
    ),
  ];
  report({
    section: 'chat',
    figures,
    ratios,
    notes: [
      `${REPS} repetitions after one untimed run of each system, alternating order; the server (one system ` +
        `per run, a fresh Redis prefix each) in a peer process, the ${CHATS} chats' clients in this one; a ` +
        `chunk is a text delta, counted once per chat however often it came; CPU is process.cpuUsage ` +
        `(user + system) of the server process from before the first POST to the last response's end`,
      `the model (the same for both) gives one UI message chunk per event-loop turn as the server pulls ` +
        `it, and stops after ${HALF} deltas until the server answered the chat's resume, so every reconnect ` +
        `lands mid-answer; resumable-stream's resume replays from the start (the AI SDK's resume sends no ` +
        `position): ${spread(f.map((r) => r.duplicates))} deltas per chat came twice`,
    ],
  });
} finally {
  admin.disconnect();
  agent.destroy();
  server.kill();
}
