/**
 * The reader side of the SSE benchmark, in its own process: opens N SSE streams to the server it is told
 * about, counts tokens, and measures producer-to-reader latency from the timestamp each token carries.
 * It serves one set of streams per message, so a section can run many servers with one reader process.
 */
import { request, Agent } from 'node:http';

interface Go {
  port: number;
  paths: string[];
  /** Latency of every `sample`th token is kept. @defaultValue 8 */
  sample?: number;
}

const agent = new Agent({ keepAlive: true, maxSockets: Infinity });

process.on('message', (msg: Go) => {
  const { port, paths } = msg;
  const sample = msg.sample ?? 8;
  const latencies: number[] = [];
  let tokens = 0;
  let open = 0;
  let done = 0;
  let first = 0;
  let last = 0;
  for (const path of paths) {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      res.setEncoding('utf8');
      open++;
      if (open === paths.length) process.send!({ type: 'ready' });
      let buf = '';
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        const now = performance.timeOrigin + performance.now();
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          // Token events only: the terminal event (done, error) carries an id too.
          if (block.startsWith('id: ') && block.includes('\nevent: token\n')) {
            const d = block.indexOf('data: ');
            const ts = Number(block.slice(d + 6));
            if (first === 0) first = now;
            last = now;
            tokens++;
            if (tokens % sample === 0) latencies.push(now - ts);
          }
        }
      });
      res.on('end', () => {
        done++;
        if (done === paths.length) {
          latencies.sort((a, b) => a - b);
          process.send!({
            type: 'result',
            tokens,
            seconds: (last - first) / 1000,
            // Wall-clock (timeOrigin-based) time of the last token, for rates from the producer's start.
            last,
            p50: latencies[Math.floor(latencies.length * 0.5)] ?? 0,
            p99: latencies[Math.floor(latencies.length * 0.99)] ?? 0,
          });
        }
      });
    });
    req.end();
  }
});
process.send!({ type: 'up' });
