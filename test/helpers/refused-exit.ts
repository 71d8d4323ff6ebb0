/**
 * Run as a process of its own (see test/http/exit.test.ts): a Node handler refuses a chunked body with
 * 413 while its client is still sending; the client goes away mid-body, then the server is closed and
 * the registry disposed. Prints the answer's status line and how long the process lived on after that.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type Socket } from 'node:net';
import { JobRegistry } from '../../src/core/index.js';
import { createJobHandler } from '../../src/http/index.js';

const registry = new JobRegistry<string>();
const handler = createJobHandler(registry, { maxBodyBytes: 1024 });
const server: Server = createServer((req, res) => handler(req, res));
await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
const serverSide = new Promise<Socket>((resolve) => server.once('connection', resolve));
const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
client.setEncoding('latin1');
let answer = '';
const answered = new Promise<void>((resolve) =>
  client.on('data', (text: string) => {
    answer += text;
    if (answer.includes('\r\n')) resolve();
  }),
);
client.write(
  'POST /v1/inference HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
);
const piece = 'x'.repeat(512);
let sending = true;
void answered.then(() => (sending = false));
while (sending) {
  client.write(`${piece.length.toString(16)}\r\n${piece}\r\n`);
  await new Promise((r) => setImmediate(r));
}
// The client goes away mid-body, after the answer; the server sees its socket close.
const closed = serverSide.then((s) => new Promise((r) => (s.destroyed ? r(undefined) : s.once('close', r))));
client.destroy();
await closed;
handler.close();
await new Promise<void>((r) => server.close(() => r()));
await registry.dispose();
const done = performance.now();
process.on('exit', () => {
  process.stdout.write(
    `${JSON.stringify({ status: answer.slice(0, answer.indexOf('\r\n')), livedOnMs: Math.round(performance.now() - done) })}\n`,
  );
});
