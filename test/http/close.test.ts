import { request } from 'node:http';
import { startTestServer } from '../helpers/http.js';

test('handler.close() ends every open token stream without a terminal event', async () => {
  const srv = await startTestServer<string, unknown>({ heartbeatMs: 0 });
  try {
    const id = srv.registry.createJob();
    srv.registry.emit(id, 'a');
    let body = '';
    const ended = new Promise<void>((resolve, reject) => {
      const req = request(`${srv.url}/v1/inference/${id}/stream`, (res) => {
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve());
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    while (!body.includes('event: token')) await new Promise((r) => setTimeout(r, 5));
    expect(srv.handler.connections).toBe(1);
    srv.handler.close();
    await ended;
    expect(srv.handler.connections).toBe(0);
    expect(body).not.toMatch(/event: (done|error)/);
    // The job goes on: a client resumes it elsewhere.
    expect(srv.registry.getJobState(id)).toBe('running');
  } finally {
    await srv.close();
  }
});
