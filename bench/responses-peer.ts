/**
 * The client side of the responses benchmark, in its own process so the server's CPU is measured alone:
 * opens N streams over one route, counts the token events and the bytes each brings, and reports once
 * every stream ended with its terminal event.
 * - `plain`: the dual-call route, `POST /v1/inference` (202 with `sse_url`), then `GET {sse_url}`; a token
 *   is an `event: token`, the end `event: done`.
 * - `responses`: the OpenAI-compatible route, `POST /v1/responses` with `background` and `stream`, whose
 *   answer is the stream; a token is a `response.output_text.delta`, the end `response.completed`.
 */
import { Agent, request, type IncomingMessage } from 'node:http';
import { once, runPeer, send } from './ipc.js';

export type Route = 'plain' | 'responses';

export interface Open {
  port: number;
  route: Route;
  streams: number;
}

export interface Done {
  tokens: number;
  /** Streams that ended with their terminal event. */
  completed: number;
  /** Bytes of the streams' bodies (ASCII: characters). */
  bytes: number;
}

const agent = new Agent({ keepAlive: true, maxSockets: Infinity });

function post(port: number, path: string, body: object, onResponse: (res: IncomingMessage) => void): void {
  const text = JSON.stringify(body);
  const req = request(
    {
      host: '127.0.0.1',
      port,
      path,
      method: 'POST',
      agent,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) },
    },
    onResponse,
  );
  req.on('error', (e) => send({ type: 'error', message: `POST ${path}: ${e.message}` }));
  req.end(text);
}

function openAll({ port, route, streams }: Open, ready: () => void): Promise<Done> {
  const isToken =
    route === 'plain'
      ? (block: string) => block.startsWith('id: ') && block.includes('\nevent: token\n')
      : (block: string) => block.startsWith('event: response.output_text.delta\n');
  const end = route === 'plain' ? 'event: done\n' : 'event: response.completed\n';
  let tokens = 0;
  let completed = 0;
  let bytes = 0;
  let started = 0;
  let ended = 0;
  return new Promise((resolve) => {
    const read = (res: IncomingMessage): void => {
      if (res.statusCode !== 200) {
        send({ type: 'error', message: `${route} stream answered ${res.statusCode}` });
        return;
      }
      res.setEncoding('utf8');
      let first = true;
      let buf = '';
      res.on('data', (chunk: string) => {
        if (first) {
          first = false;
          if (++started === streams) ready();
        }
        bytes += chunk.length;
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i + 1);
          buf = buf.slice(i + 2);
          if (isToken(block)) tokens++;
          else if (block.includes(end)) completed++;
        }
      });
      res.on('end', () => {
        if (++ended === streams) resolve({ tokens, completed, bytes });
      });
    };
    for (let s = 0; s < streams; s++) {
      if (route === 'responses')
        post(port, '/v1/responses', { model: 'm', input: 'bench', background: true, stream: true }, read);
      else
        post(port, '/v1/inference', { input: 'bench' }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            if (res.statusCode !== 202)
              return send({ type: 'error', message: `POST answered ${res.statusCode}: ${text}` });
            const { sse_url } = JSON.parse(text) as { sse_url: string };
            const get = request({ host: '127.0.0.1', port, path: sse_url, agent }, read);
            get.on('error', (e) => send({ type: 'error', message: `GET ${sse_url}: ${e.message}` }));
            get.end();
          });
        });
    }
  });
}

runPeer(async () => {
  for (;;) {
    const go = await once<Open>('open');
    const done = await openAll(go, () => send({ type: 'ready' }));
    send({ type: 'done', ...done });
  }
});
