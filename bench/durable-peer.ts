/**
 * The client side of the Durable Streams benchmark, in processes of its own so the server's CPU is
 * measured alone. HTTP/1.1 over raw `net` sockets, so the clients cost the two cores little next to the
 * server. Forked with a role:
 * - `writer`: creates text streams (`PUT`), then appends small text chunks with `POST` as fast as the
 *   server answers, one request in flight per keep-alive connection, `inflight` connections, round-robin
 *   over the streams. Each chunk is its send time (wall clock, ms) padded with spaces to
 *   `bytes` bytes, so a reader measures append-to-delivery latency.
 * - `readers`: opens one live SSE read (`GET ?offset=-1&live=sse`) per path, counts the `data` events
 *   (Protocol 5.7), and reports once every read got the chunks it expects: how many, when the last came,
 *   and latency percentiles.
 * Both stop early on the section's `stop` (a run's time budget): the writer once its requests in flight
 * are answered, the readers at once, with what they got so far.
 */
import { connect, type Socket } from 'node:net';
import { once, runPeer, send } from './ipc.js';

const now = (): number => performance.timeOrigin + performance.now();
const role = process.argv[2];

/** The section's `stop` for the run under way (a run's time budget is over). */
let onStop: (() => void) | undefined;
process.on('message', (m: { type: string }) => void (m.type === 'stop' && onStop?.()));

export interface Create {
  type: 'create';
  port: number;
  paths: string[];
}
export interface Write {
  type: 'write';
  port: number;
  paths: string[];
  total: number;
  inflight: number;
  /** Size of a chunk. */
  bytes: number;
}
export interface Written {
  type: 'written';
  /** Wall-clock time of the first append sent. */
  start: number;
  appends: number;
  /** The writer's CPU time over the appends, µs. */
  cpu: number;
}
export interface Open {
  type: 'open';
  port: number;
  paths: string[];
  /** Chunks each read waits for. */
  expect: number;
}
export interface Result {
  type: 'result';
  chunks: number;
  /** Wall-clock time of the last chunk delivered. */
  last: number;
  p50: number;
  p99: number;
  /** The readers' CPU time from the open to the last chunk, µs. */
  cpu: number;
}

/**
 * Where the answer whose head ends at `head` ends in `buf` (`-1`: not all in yet): after a
 * `Content-Length` body, a chunked body, or no body (`1xx`, `204`, `304`, or neither header).
 */
function bodyEnd(buf: string, head: number): number {
  const status = Number(buf.slice(9, 12));
  const fields = buf.slice(0, head);
  let at = head + 4;
  if (status < 200 || status === 204 || status === 304) return at;
  const length = /\r\ncontent-length: *(\d+)/i.exec(fields);
  if (length !== null) return at + Number(length[1]) <= buf.length ? at + Number(length[1]) : -1;
  if (!/\r\ntransfer-encoding: *chunked/i.test(fields)) return at;
  for (;;) {
    const line = buf.indexOf('\r\n', at);
    if (line < 0) return -1;
    const size = parseInt(buf.slice(at, line), 16);
    at = line + 2 + size + 2;
    if (at > buf.length) return -1;
    if (size === 0) return at;
  }
}

/**
 * A keep-alive HTTP/1.1 connection that sends one request at a time; `request` resolves with the status
 * once the whole answer (head, and a `Content-Length` body if any) is in.
 */
class Connection {
  private readonly socket: Socket;
  private buf = '';
  private pending: { resolve(status: number): void; reject(e: Error): void } | undefined;

  constructor(private readonly port: number) {
    this.socket = connect({ port, host: '127.0.0.1', noDelay: true });
    this.socket.setEncoding('latin1');
    this.socket.on('data', (text: string) => {
      this.buf += text;
      const head = this.buf.indexOf('\r\n\r\n');
      if (head < 0 || this.pending === undefined) return;
      const end = bodyEnd(this.buf, head);
      if (end < 0) return;
      const status = Number(this.buf.slice(9, 12));
      this.buf = this.buf.slice(end);
      const p = this.pending;
      this.pending = undefined;
      p.resolve(status);
    });
    const fail = (e: Error): void => {
      const p = this.pending;
      this.pending = undefined;
      p?.reject(e);
    };
    this.socket.on('error', fail);
    this.socket.on('close', () => fail(new Error('connection closed')));
  }

  request(method: string, path: string, headers: string, body = ''): Promise<number> {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.socket.write(
        `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${this.port}\r\n${headers}Content-Length: ${body.length}\r\n\r\n${body}`,
        'latin1',
      );
    });
  }

  destroy(): void {
    this.pending = undefined;
    this.socket.destroy();
  }
}

async function writer(): Promise<void> {
  for (;;) {
    const c = await once<Create>('create');
    const setup = new Connection(c.port);
    for (const path of c.paths) {
      const status = await setup.request('PUT', path, 'Content-Type: text/plain\r\n');
      if (status !== 201) throw new Error(`PUT ${path}: ${status}`);
    }
    setup.destroy();
    send({ type: 'created' });
    const w = await once<Write>('write');
    let stopped = false;
    onStop = () => void (stopped = true);
    const conns = Array.from({ length: Math.min(w.inflight, w.total) }, () => new Connection(w.port));
    const start = now();
    const c0 = process.cpuUsage();
    let next = 0;
    await Promise.all(
      conns.map(async (conn) => {
        while (next < w.total && !stopped) {
          const path = w.paths[next++ % w.paths.length]!;
          const body = now().toFixed(3).padEnd(w.bytes, ' ');
          const status = await conn.request('POST', path, 'Content-Type: text/plain\r\n', body);
          if (status !== 204 && status !== 200) throw new Error(`POST ${path}: ${status}`);
        }
      }),
    );
    onStop = undefined;
    const cpu = process.cpuUsage(c0);
    send({ type: 'written', start, appends: next, cpu: cpu.user + cpu.system } satisfies Written);
    await once('close');
    for (const conn of conns) conn.destroy();
    send({ type: 'closed' });
  }
}

const DATA = 'event: data\n';
const CONTROL = 'event: control\n';

async function readers(): Promise<void> {
  for (;;) {
    const o = await once<Open>('open');
    const c0 = process.cpuUsage();
    const sockets: Socket[] = [];
    const latencies = new Float64Array(o.paths.length * o.expect);
    let chunks = 0;
    let last = 0;
    let live = 0;
    let complete = 0;
    const finished = new Promise<void>((resolve, reject) => {
      for (const path of o.paths) {
        const socket = connect({ port: o.port, host: '127.0.0.1', noDelay: true });
        sockets.push(socket);
        socket.setEncoding('latin1');
        socket.write(
          `GET ${path}?offset=-1&live=sse HTTP/1.1\r\nHost: 127.0.0.1:${o.port}\r\nAccept: text/event-stream\r\n\r\n`,
        );
        let buf = '';
        let head = true;
        let ready = false;
        let got = 0;
        socket.on('data', (text: string) => {
          buf += text;
          if (head) {
            const end = buf.indexOf('\r\n\r\n');
            if (end < 0) return;
            if (!buf.startsWith('HTTP/1.1 200 '))
              return reject(new Error(`GET ${path}: ${buf.slice(0, buf.indexOf('\r\n'))}`));
            head = false;
            buf = buf.slice(end + 4);
          }
          // Complete events end at the last blank line. The body is chunked: a chunk's size line may sit
          // between an event's lines (a server that writes `event:` and `data:` apart), never inside one.
          const done = buf.lastIndexOf('\n\n');
          if (done < 0) return;
          const t = now();
          if (!ready) {
            const c = buf.indexOf(CONTROL);
            if (c >= 0 && c < done) {
              // The first control event: the read is open and caught up.
              ready = true;
              if (++live === o.paths.length) send({ type: 'ready' });
            }
          }
          for (let at = buf.indexOf(DATA); at >= 0 && at < done; at = buf.indexOf(DATA, at + DATA.length)) {
            const d = buf.indexOf('data:', at + DATA.length) + 5;
            if (chunks < latencies.length) latencies[chunks] = t - Number(buf.slice(d, buf.indexOf('\n', d)));
            chunks++;
            last = t;
            if (++got === o.expect && ++complete === o.paths.length) resolve();
          }
          buf = buf.slice(done + 2);
        });
        socket.on('error', reject);
      }
    });
    await Promise.race([finished, new Promise<void>((resolve) => (onStop = resolve))]);
    onStop = undefined;
    const cpu = process.cpuUsage(c0);
    const n = Math.min(chunks, latencies.length);
    const sorted = latencies.subarray(0, n).sort();
    send({
      type: 'result',
      chunks,
      last,
      p50: sorted[Math.floor(n * 0.5)] ?? 0,
      p99: sorted[Math.floor(n * 0.99)] ?? 0,
      cpu: cpu.user + cpu.system,
    } satisfies Result);
    await once('close');
    for (const s of sockets) s.destroy();
    send({ type: 'closed' });
  }
}

runPeer(
  role === 'writer'
    ? writer
    : role === 'readers'
      ? readers
      : () => Promise.reject(new Error(`durable-peer: unknown role ${role}`)),
);
