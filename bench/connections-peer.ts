/**
 * The client side of the connections benchmark, in its own process so the server's heap is measured
 * alone: opens N SSE streams over raw `net` sockets (an HTTP/1.1 GET each, a bounded number connecting at
 * once), counts those that got a 200 and the first bytes of the stream (the `retry:` field), then counts
 * heartbeats (`: ping` comments) while the streams are held, and finally closes every socket itself, as
 * clients that go away do.
 */
import { connect, type Socket } from 'node:net';
import { once, runPeer, send } from './ipc.js';

interface Open {
  port: number;
  paths: string[];
  /** Sockets connecting (not yet past their first bytes) at once. */
  window: number;
  /** Streams not open by then count as failed. */
  deadlineMs: number;
}

export interface Opened {
  ok: number;
  failed: number;
  ms: number;
  /** Why streams failed: an error code, an HTTP status line, or `no answer`, with counts. */
  failures: Record<string, number>;
}

interface Client {
  socket: Socket;
  /** Unparsed text: the head until it is complete, then at most the start of an unfinished line. */
  buf: string;
  ok: boolean;
  pings: number;
  closed: boolean;
}

const clients: Client[] = [];

function openAll({ port, paths, window, deadlineMs }: Open): Promise<Opened> {
  const t0 = performance.now();
  const failures: Record<string, number> = {};
  const fail = (why: string, n = 1): void => void (failures[why] = (failures[why] ?? 0) + n);
  return new Promise((resolve) => {
    let next = 0;
    let settled = 0;
    let ok = 0;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      if (settled < paths.length) fail('no answer', paths.length - settled);
      resolve({ ok, failed: paths.length - ok, ms: performance.now() - t0, failures });
    };
    const deadline = setTimeout(finish, deadlineMs);
    const settle = (c: Client, good: boolean): void => {
      if (done) return;
      if (good) ok++;
      c.ok = good;
      settled++;
      if (settled === paths.length) finish();
      else if (next < paths.length) start(next++);
    };
    const start = (i: number): void => {
      const socket = connect({ port, host: '127.0.0.1' });
      const c: Client = { socket, buf: '', ok: false, pings: 0, closed: false };
      let first = true;
      clients.push(c);
      socket.setEncoding('latin1');
      socket.write(
        `GET ${paths[i]} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`,
      );
      socket.on('data', (chunk: string) => {
        c.buf += chunk;
        if (first) {
          const head = c.buf.indexOf('\r\n\r\n');
          if (head < 0) return;
          if (!c.buf.startsWith('HTTP/1.1 200 ')) {
            first = false;
            fail(c.buf.slice(0, c.buf.indexOf('\r\n')));
            return settle(c, false);
          }
          // The first bytes of the stream: its `retry:` field.
          if (c.buf.indexOf('retry: ', head) < 0) return;
          first = false;
          c.buf = c.buf.slice(c.buf.lastIndexOf('\n') + 1);
          return settle(c, true);
        }
        // A complete `: ping` ends in a line break, so it lies before the last one.
        for (let at = c.buf.indexOf(': ping'); at >= 0; at = c.buf.indexOf(': ping', at + 6)) c.pings++;
        c.buf = c.buf.slice(c.buf.lastIndexOf('\n') + 1);
      });
      socket.on('error', (e: NodeJS.ErrnoException) => {
        if (first) fail(e.code ?? e.message);
      });
      socket.on('close', () => {
        c.closed = true;
        if (first) {
          first = false;
          settle(c, false);
        }
      });
    };
    for (; next < Math.min(window, paths.length); next++) start(next);
  });
}

/** Resolves with how many held streams got a heartbeat since the call, once all did or after `ms`. */
function hold(ms: number): Promise<number> {
  const held = clients.filter((c) => c.ok && !c.closed);
  for (const c of held) c.pings = 0;
  const deadline = performance.now() + ms;
  return new Promise((resolve) => {
    const check = (): void => {
      const pinged = held.filter((c) => c.pings > 0).length;
      if (pinged === held.length || performance.now() > deadline) resolve(pinged);
      else setTimeout(check, 50);
    };
    check();
  });
}

function closeAll(): Promise<void> {
  const open = clients.filter((c) => !c.closed);
  return new Promise((resolve) => {
    let left = open.length;
    if (left === 0) return resolve();
    for (const c of open) {
      c.socket.once('close', () => --left === 0 && resolve());
      c.socket.destroy();
    }
  });
}

runPeer(async () => {
  for (;;) {
    const opened = await openAll(await once<Open>('open'));
    send({ type: 'opened', ...opened });
    const { ms } = await once<{ ms: number }>('hold');
    send({ type: 'held', pinged: await hold(ms) });
    await once('close');
    await closeAll();
    clients.length = 0;
    send({ type: 'closed' });
  }
});
