import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { throwError } from 'rxjs';
import { JobRegistry, PublicError } from '../../src/core/index.js';
import { createJobHandler } from '../../src/http/index.js';
import { waitFor } from '../helpers/collect.js';
import { http, openResponse, postJson, startTestServer } from '../helpers/http.js';

const memory = () => {
  const lines: string[] = [];
  return {
    lines,
    logger: { error: (m: string) => lines.push(`error ${m}`), warn: (m: string) => lines.push(`warn ${m}`) },
  };
};

test("the registry's logger gets the full text of a private failure, once; a public one is not logged", async () => {
  const log = memory();
  const r = new JobRegistry<string>({ logger: log.logger });
  const a = r.createJob();
  r.executeAndStream(a, () => throwError(() => new Error('upstream refused: apiKey=sk-1')));
  const b = r.createJob();
  r.executeAndStream(b, () => throwError(() => new PublicError('overloaded')));
  expect(r.getJob(a)).toMatchObject({
    state: 'failed',
    error: 'upstream refused: apiKey=sk-1',
    errorPrivate: true,
  });
  expect(log.lines).toHaveLength(1);
  expect(log.lines[0]).toMatch(
    new RegExp(`^warn job-registry: job '${a}' failed: Error: upstream refused: apiKey=sk-1`),
  );
  await r.dispose();
});

test('an unexpected error of a request goes to Express next(err); without next it is logged and answered 500', async () => {
  const registry = new JobRegistry<string>();
  const log = memory();
  const handler = createJobHandler(registry, {
    logger: log.logger,
    authenticate: () => {
      throw new TypeError('session store is down');
    },
  });
  const app = express();
  app.use(handler);
  let seen: unknown;
  app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    seen = err;
    res.status(502).json({ from: 'express' });
  });
  const viaExpress = createServer(app);
  const bare = createServer((req, res) => handler(req, res));
  try {
    for (const s of [viaExpress, bare]) await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const url = (s: typeof bare) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    const a = await http(`${url(viaExpress)}/v1/jobs`);
    expect(a.status).toBe(502);
    expect(seen).toBeInstanceOf(TypeError);
    expect(log.lines).toEqual([]);
    const b = await postJson(`${url(bare)}/v1/inference`, {});
    expect(b.status).toBe(500);
    expect(JSON.parse(b.body).error.code).toBe('INTERNAL');
    expect(log.lines).toHaveLength(1);
    expect(log.lines[0]).toMatch(
      /^error job-registry: POST \/v1\/inference failed: TypeError: session store is down/,
    );
  } finally {
    handler.close();
    await registry.dispose();
    for (const s of [viaExpress, bare]) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  }
});

test('a /v1/events stream closed by a failure is logged once per outage, not once per reconnect', async () => {
  const registry = new JobRegistry<string>();
  registry.createJob();
  const log = memory();
  let broken = true;
  const srv = await startTestServer<string, unknown>(
    {
      logger: log.logger,
      authenticate: () => ({ id: 'p' }),
      authorize: (_p, action, job) => {
        if (broken && action === 'events' && job !== undefined) throw new Error('policy store is down');
        return true;
      },
    },
    {},
    registry,
  );
  try {
    for (let i = 0; i < 3; i++) {
      const r = await http(`${srv.url}/v1/events`);
      // The stream opened, then closed without its snapshot.
      expect(r.status).toBe(200);
      expect(r.body).not.toContain('event: snapshot');
    }
    expect(log.lines.filter((l) => l.startsWith('error'))).toHaveLength(1);
    expect(log.lines[0]).toMatch(
      /^error job-registry: an \/v1\/events stream failed and was closed: Error: policy store is down/,
    );
    broken = false;
    const live = await openResponse(`${srv.url}/v1/events`);
    await waitFor(() => live.text().includes('event: snapshot'));
    live.close();
    expect(log.lines.at(-1)).toBe('warn job-registry: /v1/events streams open again');
  } finally {
    await srv.close();
  }
});
