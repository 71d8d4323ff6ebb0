import { request } from 'node:http';
import { waitFor } from '../helpers/collect.js';
import { http, parseSse, postJson } from '../helpers/http.js';
import { spawnServer } from '../helpers/processes.js';

/** The messages of the pino lines (JSON, one per line) a server printed. */
function logged(output: string): Array<{ level: number; msg: string }> {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; msg: string });
}

test('the example server logs its URL (pino), serves the dashboard, and shuts down cleanly on SIGTERM', async () => {
  // A short drain: the long job below is cancelled at its end.
  const server = await spawnServer({ DRAIN_MS: '300' });
  try {
    expect(logged(server.output()).map((l) => l.msg)).toContainEqual(
      expect.stringMatching(/^job-registry example server on http:\/\/127\.0\.0\.1:\d+\/ \(in memory\)$/),
    );
    const page = await http(`${server.url}/`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('/assets/dashboard.js');
    expect((await http(`${server.url}/assets/client.js`)).body).toContain('EventSource');
    const bad = await postJson(`${server.url}/v1/inference`, { prompt: 42 });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).error.code).toBe('INVALID_PAYLOAD');
    const { sse_url } = JSON.parse(
      (
        await postJson(`${server.url}/v1/inference`, {
          prompt: 'a long job',
          max_tokens: 10_000,
          delay_ms: 20,
        })
      ).body,
    );
    let body = '';
    let ended = false;
    request(server.url + sse_url, (res) => {
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => (ended = true));
    }).end();
    await waitFor(() => body.includes('id: 2'), 5000, 'tokens');
    const code = await server.stop('SIGTERM');
    expect(code).toBe(0);
    await waitFor(() => ended, 5000, 'stream end');
    const events = parseSse(body);
    expect(events.at(-1)).toEqual({
      id: String(events.filter((e) => e.event === 'token').length),
      event: 'error',
      data: JSON.stringify({ state: 'cancelled', error: 'the server is shutting down' }),
    });
    const msgs = logged(server.output()).map((l) => l.msg);
    expect(msgs).toContainEqual(expect.stringMatching(/^SIGTERM: draining/));
    expect(msgs).toContain('SIGTERM: drained (0 finished, 1 cancelled); exiting');
  } finally {
    await server.stop('SIGKILL');
  }
});

test('the simulated model: words in order, cycling, max_tokens, fail_after', async () => {
  const server = await spawnServer({});
  try {
    const run = async (payload: object) => {
      const { sse_url } = JSON.parse((await postJson(`${server.url}/v1/inference`, payload)).body);
      return parseSse((await http(server.url + sse_url)).body);
    };
    const cycled = await run({ prompt: '  one two\tthree ', max_tokens: 5 });
    expect(cycled.map((e) => e.data)).toEqual([
      '"one"',
      '"two"',
      '"three"',
      '"one"',
      '"two"',
      '{"state":"completed"}',
    ]);
    const dflt = await run({ prompt: 'just these words' });
    expect(dflt.filter((e) => e.event === 'token')).toHaveLength(3);
    const failing = await run({ prompt: 'a b c d', fail_after: 2 });
    expect(failing.map((e) => e.event)).toEqual(['token', 'token', 'error']);
    expect(JSON.parse(failing[2]!.data)).toEqual({ state: 'failed', error: 'simulated failure' });
  } finally {
    await server.stop('SIGKILL');
  }
});
