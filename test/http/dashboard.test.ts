import { mkdirSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { startServer, type RunningServer } from '../../examples/inference-server.js';
import { CHROMIUM, CHROMIUM_FLAGS, haveChromium } from '../helpers/browser.js';
import { describeIf, waitFor } from '../helpers/collect.js';
import { http, postJson } from '../helpers/http.js';

/** A logger that keeps the lines, so the suite's output stays clean and tests can read them. */
function quietLogger(): {
  lines: string[];
  info(m: string): void;
  warn(m: string): void;
  error(m: string): void;
} {
  const lines: string[] = [];
  return { lines, info: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m) };
}

const KEY_A = 'dashboard-key-a-0123456789abcdef';
const KEY_B = 'dashboard-key-b-fedcba9876543210';

describeIf(haveChromium())('dashboard in headless Chromium', () => {
  let server: RunningServer;
  let browser: Browser;
  beforeAll(async () => {
    server = await startServer({ port: 0, logger: quietLogger() });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS, headless: true });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  test('a job created elsewhere appears and reaches completed live; a submitted prompt streams its tokens', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url + '/');
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 10_000 });

    // A job POSTed by another client shows up and goes to completed, without a reload.
    const res = await postJson(`${server.url}/v1/inference`, {
      prompt: 'one two three',
      max_tokens: 6,
      delay_ms: 40,
    });
    const { job_id } = JSON.parse(res.body);
    const row = page.locator(`tr[data-job-id="${job_id}"]`);
    await row.waitFor({ timeout: 10_000 });
    await page.waitForSelector(`tr[data-job-id="${job_id}"][data-state="completed"]`, { timeout: 10_000 });
    await page.waitForFunction(
      (id) => document.querySelector(`tr[data-job-id="${id}"] .tokens-cell`)?.textContent === '6',
      job_id,
      { timeout: 10_000 },
    );

    // A prompt submitted from the page streams into the output, in order.
    await page.fill('#prompt', 'alpha beta gamma delta');
    await page.fill('#delay-ms', '30');
    await page.click('#submit-button');
    await page.waitForFunction(
      () => document.querySelector('#output-state')?.textContent === 'completed',
      undefined,
      { timeout: 10_000 },
    );
    const text = await page.locator('#output-tokens span:not(.end)').allTextContents();
    expect(text.map((t) => t.trim())).toEqual(['alpha', 'beta', 'gamma', 'delta']);

    // Cancel from the page: a long prompt is stopped by its Cancel button, and the table shows it.
    await page.fill('#max-tokens', '10000');
    await page.fill('#delay-ms', '20');
    // The output panel still shows the previous job: wait for the new job's id, then its tokens.
    const previousId = (await page.textContent('#output-id'))!;
    await page.click('#submit-button');
    await page.waitForFunction(
      (before) =>
        document.querySelector('#output-id')?.textContent !== before &&
        (document.querySelector('#output-tokens')?.childElementCount ?? 0) >= 3,
      previousId,
      { timeout: 10_000 },
    );
    const cancelledId = (await page.textContent('#output-id'))!;
    expect(cancelledId).not.toBe(previousId);
    await page.click('#output-cancel');
    await page.waitForFunction(
      () => document.querySelector('#output-state')?.textContent === 'cancelled',
      undefined,
      { timeout: 10_000 },
    );
    await page.waitForSelector(`tr[data-job-id="${cancelledId}"][data-state="cancelled"]`, {
      timeout: 10_000,
    });
    expect(server.registry.getJobState(cancelledId)).toBe('cancelled');
    await page.fill('#max-tokens', '');

    // A long job, for the screenshot: running, with tokens arriving.
    await postJson(`${server.url}/v1/inference`, {
      prompt: 'streaming tokens live',
      max_tokens: 500,
      delay_ms: 50,
    });
    await postJson(`${server.url}/v1/inference`, { prompt: 'this one fails', max_tokens: 10, fail_after: 2 });
    await page.waitForSelector('tr[data-state="failed"]', { timeout: 10_000 });
    // The running job's token count climbs live (from `progress` events).
    await page.waitForFunction(
      () => Number(document.querySelector('tr[data-state="running"] .tokens-cell')?.textContent) > 3,
      undefined,
      {
        timeout: 10_000,
      },
    );
    await page.locator('h2').first().click();
    mkdirSync('test-output', { recursive: true });
    await page.screenshot({ path: 'test-output/dashboard.png', fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  test('opened mid-run, the page shows time to first token and tokens per second of jobs that started before it', async () => {
    // One job finished and one still running before the page opens: their first tokens came unseen.
    const done = JSON.parse(
      (await postJson(`${server.url}/v1/inference`, { prompt: 'a b c d', max_tokens: 8, delay_ms: 10 })).body,
    ).job_id as string;
    const running = JSON.parse(
      (await postJson(`${server.url}/v1/inference`, { prompt: 'x y', max_tokens: 2000, delay_ms: 20 })).body,
    ).job_id as string;
    await waitFor(
      () =>
        server.registry.getJobState(done) === 'completed' &&
        (server.registry.getJob(running)?.tokenCount ?? 0) > 2,
    );
    const snap = JSON.parse((await http(`${server.url}/v1/inference/${done}`)).body);
    expect(snap.first_token_at).toEqual(expect.any(String));
    const page = await browser.newPage();
    await page.goto(server.url + '/');
    for (const id of [done, running]) {
      const row = `tr[data-job-id="${id}"]`;
      await page.waitForSelector(row, { timeout: 10_000 });
      await page.waitForFunction(
        (sel) => {
          const r = document.querySelector(sel);
          const ttft = r?.querySelector('.ttft')?.textContent ?? '—';
          const tps = r?.querySelector('.tps')?.textContent ?? '—';
          return ttft !== '—' && ttft !== '' && tps !== '—' && tps !== '';
        },
        row,
        { timeout: 10_000 },
      );
    }
    expect(await page.textContent(`tr[data-job-id="${done}"] .ttft`)).toMatch(/^\d+ ms$|^\d+\.\d s$/);
    await server.registry.cancel(running);
    await page.close();
  });

  test('counts come from progress events: no periodic /v1/jobs request, and the count climbs live', async () => {
    const page = await browser.newPage();
    const listRequests: string[] = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/v1/jobs') listRequests.push(r.url());
    });
    await page.goto(server.url + '/');
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 10_000 });

    // A job POSTed elsewhere: the page never streams its tokens, so only events can tell its count.
    const { job_id } = JSON.parse(
      (
        await postJson(`${server.url}/v1/inference`, {
          prompt: 'counted live',
          max_tokens: 400,
          delay_ms: 20,
        })
      ).body,
    );
    const cell = `tr[data-job-id="${job_id}"] .tokens-cell`;
    await page.waitForSelector(`tr[data-job-id="${job_id}"][data-state="running"]`, { timeout: 10_000 });
    const seen: number[] = [];
    const started = Date.now();
    while (Date.now() - started < 3000) {
      seen.push(Number(await page.textContent(cell)));
      await new Promise((r) => setTimeout(r, 250));
    }
    // Rising, in many steps, and never ahead of the job.
    expect(new Set(seen).size).toBeGreaterThanOrEqual(5);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(seen.at(-1)!).toBeLessThanOrEqual(server.registry.getJob(job_id)!.tokenCount);
    // The page made no request for the list at all, on the way in or while the job ran.
    expect(listRequests.length).toBeLessThanOrEqual(1);

    // A cancel: the row's last count is the job's.
    await http(`${server.url}/v1/inference/${job_id}`, { method: 'DELETE' });
    await page.waitForSelector(`tr[data-job-id="${job_id}"][data-state="cancelled"]`, { timeout: 10_000 });
    const final = server.registry.getJob(job_id)!.tokenCount;
    await page.waitForFunction(
      ([sel, n]) => document.querySelector(sel as string)?.textContent === String(n),
      [cell, final] as const,
      { timeout: 5000 },
    );
    expect(listRequests.length).toBeLessThanOrEqual(1);
    await page.close();
  }, 30_000);

  test('the charts move while jobs stream: tokens per second rises above 0 and the canvases are redrawn', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url + '/');
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 10_000 });
    const pixels = () =>
      page.evaluate(() =>
        ['chart-tps', 'chart-states'].map((id) =>
          (document.getElementById(id) as HTMLCanvasElement).toDataURL(),
        ),
      );
    const before = await pixels();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push(
        JSON.parse(
          (await postJson(`${server.url}/v1/inference`, { prompt: 'a b c d', max_tokens: 200, delay_ms: 20 }))
            .body,
        ).job_id,
      );
    // The latest tokens/s sample is exposed on the canvas, for assistive technology and for this test.
    await page.waitForFunction(
      () => Number(document.getElementById('chart-tps')?.dataset.latest) > 10,
      undefined,
      {
        timeout: 10_000,
      },
    );
    expect(await page.getAttribute('#chart-tps', 'aria-label')).toMatch(/now \d+/);
    await page.waitForFunction(
      () => /running [1-9]/.test(document.getElementById('chart-states')?.dataset.latest ?? ''),
      undefined,
      { timeout: 10_000 },
    );
    const during = await pixels();
    expect(during[0]).not.toBe(before[0]);
    expect(during[1]).not.toBe(before[1]);
    // It keeps moving: the tokens/s canvas is drawn again with new samples.
    await page.waitForFunction(
      (drawn) => (document.getElementById('chart-tps') as HTMLCanvasElement).toDataURL() !== drawn,
      during[0],
      { timeout: 10_000, polling: 100 },
    );
    // Per-job figures: a running job shows its time to first token and its tokens per second.
    await page.waitForFunction(
      (id) => {
        const tr = document.querySelector(`tr[data-job-id="${id}"]`);
        return (
          /\d/.test(tr?.querySelector('.ttft')?.textContent ?? '') &&
          Number(tr?.querySelector('.tps')?.textContent) > 0
        );
      },
      ids[0],
      { timeout: 10_000 },
    );
    for (const id of ids) await http(`${server.url}/v1/inference/${id}`, { method: 'DELETE' });
    expect(errors).toEqual([]);
    await page.close();
  }, 30_000);

  test('clicking a running job shows its tokens in order, from the start, and its end; Enter replays a finished one', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url + '/');
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 10_000 });
    const words = Array.from({ length: 16 }, (_, i) => `w${i}`);
    const { job_id } = JSON.parse(
      (await postJson(`${server.url}/v1/inference`, { prompt: words.join(' '), delay_ms: 60 })).body,
    );
    await page.waitForFunction(
      (id) => Number(document.querySelector(`tr[data-job-id="${id}"] .tokens-cell`)?.textContent) >= 2,
      job_id,
      { timeout: 10_000 },
    );
    expect(server.registry.getJobState(job_id)).toBe('running');
    await page.click(`tr[data-job-id="${job_id}"] code`);
    expect(await page.textContent('#watch-id')).toBe(job_id);
    await page.waitForFunction(
      () => document.querySelector('#watch-state')?.textContent === 'completed',
      undefined,
      {
        timeout: 10_000,
      },
    );
    const tokens = async () =>
      (await page.locator('#watch-tokens span:not(.end)').allTextContents()).map((t) => t.trim());
    expect(await tokens()).toEqual(words);
    expect(await page.textContent('#watch-tokens .end')).toContain('end of stream');
    expect(await page.textContent('#watch-count')).toBe('16');

    // A finished job, from the keyboard: focus its row, Enter; its stream is replayed from the start.
    const { job_id: done } = JSON.parse(
      (await postJson(`${server.url}/v1/inference`, { prompt: 'one two three', delay_ms: 5 })).body,
    );
    await page.waitForSelector(`tr[data-job-id="${done}"][data-state="completed"]`, { timeout: 10_000 });
    await page.focus(`tr[data-job-id="${done}"]`);
    await page.keyboard.press('Enter');
    await page.waitForFunction((id) => document.querySelector('#watch-id')?.textContent === id, done);
    await page.waitForSelector('#watch-tokens .end', { timeout: 10_000 });
    expect(await tokens()).toEqual(['one', 'two', 'three']);

    // Cancel from the panel.
    const { job_id: long } = JSON.parse(
      (await postJson(`${server.url}/v1/inference`, { prompt: 'x y', max_tokens: 10_000, delay_ms: 20 }))
        .body,
    );
    await page.waitForSelector(`tr[data-job-id="${long}"][data-state="running"]`, { timeout: 10_000 });
    await page.click(`tr[data-job-id="${long}"] code`);
    await page.waitForFunction(() => document.querySelectorAll('#watch-tokens span').length >= 3, undefined, {
      timeout: 10_000,
    });
    await page.click('#watch-cancel');
    await page.waitForFunction(
      () => document.querySelector('#watch-state')?.textContent === 'cancelled',
      undefined,
      {
        timeout: 10_000,
      },
    );
    expect(server.registry.getJobState(long)).toBe('cancelled');
    await page.click('#watch-close');
    expect(await page.isVisible('#watch')).toBe(false);
    expect(errors).toEqual([]);
    await page.close();
  }, 30_000);

  test('filter by state and search by id', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(server.url + '/');
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 10_000 });
    const { job_id: failed } = JSON.parse(
      (await postJson(`${server.url}/v1/inference`, { prompt: 'f g h', fail_after: 1 })).body,
    );
    await page.waitForSelector(`tr[data-job-id="${failed}"][data-state="failed"]`, { timeout: 10_000 });
    await page.selectOption('#filter-state', 'failed');
    await page.waitForFunction(() =>
      Array.from(document.querySelectorAll('tr[data-job-id]')).every(
        (tr) => (tr as HTMLElement).dataset.state === 'failed',
      ),
    );
    expect(await page.locator(`tr[data-job-id="${failed}"]`).count()).toBe(1);
    await page.selectOption('#filter-state', '');
    await page.fill('#search', failed.slice(-10));
    await page.waitForFunction(() => document.querySelectorAll('tr[data-job-id]').length === 1);
    expect(await page.getAttribute('tr[data-job-id]', 'data-job-id')).toBe(failed);

    // From the keyboard: Tab from the search box lands on the list's one tabbable row; ↓ moves down it.
    await page.fill('#search', '');
    await page.waitForFunction(() => document.querySelectorAll('tr[data-job-id]').length > 1);
    await page.focus('#search');
    await page.keyboard.press('Tab');
    const focused = () => page.evaluate(() => (document.activeElement as HTMLElement).dataset.jobId);
    const ids = await page.$$eval('tr[data-job-id]', (rows) =>
      rows.map((r) => (r as HTMLElement).dataset.jobId),
    );
    expect(await focused()).toBe(ids[0]);
    expect(await page.locator('tr[data-job-id][tabindex="0"]').count()).toBe(1);
    await page.keyboard.press('ArrowDown');
    expect(await focused()).toBe(ids[1]);
    await page.close();
  }, 30_000);
});

describeIf(haveChromium())('dashboard in headless Chromium, with 10,000 jobs', () => {
  let server: RunningServer;
  let browser: Browser;
  const N = 10_000;
  beforeAll(async () => {
    server = await startServer({ port: 0, maxJobs: 2 * N, logger: quietLogger() });
    for (let i = 0; i < N; i++) {
      const id = server.registry.createJob({ claimTimeout: 'PT1H' });
      if (i % 100 === 0) continue; // a few stay queued
      server.registry.updateState(id, 'running');
      server.registry.emit(id, 'word');
      server.registry.updateState(id, i % 7 === 0 ? 'failed' : 'completed', i % 7 === 0 ? 'boom' : undefined);
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS, headless: true });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  test('the snapshot renders quickly as a windowed list, scrolls to the end, and a new job appears at the top', async () => {
    expect(server.registry.jobCount()).toBe(N);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.addInitScript(() => {
      const w = window as unknown as { longest: number };
      w.longest = 0;
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) w.longest = Math.max(w.longest, e.duration);
      }).observe({ type: 'longtask', buffered: true });
    });
    const started = Date.now();
    await page.goto(server.url + '/');
    await page.waitForFunction((n) => document.getElementById('stat-total')?.textContent === String(n), N, {
      timeout: 10_000,
    });
    await page.waitForSelector('tr[data-job-id]');
    const elapsed = Date.now() - started;
    expect(elapsed).toBeLessThan(5000);
    // Only the rows in view (and a few around them) are in the DOM.
    expect(await page.locator('tr[data-job-id]').count()).toBeLessThan(100);
    const longest = await page.evaluate(() => (window as unknown as { longest: number }).longest);
    expect(longest).toBeLessThan(1000);

    // Scrolling to the end shows the oldest job.
    const ids = server.registry.jobIds();
    await page.evaluate(() => {
      const s = document.getElementById('scroller')!;
      s.scrollTop = s.scrollHeight;
    });
    await page.waitForSelector(`tr[data-job-id="${ids[0]}"]`, { timeout: 5000 });
    await page.evaluate(() => (document.getElementById('scroller')!.scrollTop = 0));

    // A new job created after the snapshot appears at the top, live.
    const { job_id } = JSON.parse(
      (await postJson(`${server.url}/v1/inference`, { prompt: 'new one', delay_ms: 10 })).body,
    );
    await page.waitForSelector(`tr[data-job-id="${job_id}"][data-state="completed"]`, { timeout: 10_000 });
    expect(await page.getAttribute('tbody tr[data-job-id]', 'data-job-id')).toBe(job_id);
    expect(await page.textContent('#stat-total')).toBe(String(N + 1));
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);
});

describeIf(haveChromium())('dashboard in headless Chromium, with API keys', () => {
  let server: RunningServer;
  let browser: Browser;
  const log = quietLogger();
  beforeAll(async () => {
    server = await startServer({ port: 0, apiKeys: [KEY_A, KEY_B], logger: log });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS, headless: true });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  const post = (key: string, body: object) =>
    http(`${server.url}/v1/inference`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify(body),
    });

  test('asks for a key, then lists only its own jobs live and streams a submitted prompt through the signed sse_url', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url + '/');
    // The server answers 401 to /v1/events: the page asks for a key instead of going live.
    await page.waitForSelector('#conn[data-state="locked"]', { timeout: 10_000 });
    expect(await page.isVisible('#key-form')).toBe(true);

    // A wrong key is refused, and the page says so.
    await page.fill('#api-key', 'not-a-key-of-this-server');
    await page.click('#api-key-save');
    await page.waitForFunction(() => document.querySelector('#key-error')?.textContent !== '', undefined, {
      timeout: 10_000,
    });
    expect(await page.getAttribute('#conn', 'data-state')).toBe('locked');

    // Another key's job exists before and after the page connects; it must never show.
    const other1 = JSON.parse((await post(KEY_B, { prompt: 'not yours', max_tokens: 3 })).body).job_id;

    await page.fill('#api-key', KEY_A);
    await page.click('#api-key-save');
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 10_000 });
    expect(await page.isVisible('#key-form')).toBe(false);
    expect(await page.evaluate(() => sessionStorage.getItem('job-registry.api-key'))).toBe(KEY_A);

    // A job of this key POSTed by another client shows up and completes live (events read with fetch).
    const mine = JSON.parse(
      (await post(KEY_A, { prompt: 'one two three', max_tokens: 6, delay_ms: 40 })).body,
    ).job_id;
    const other2 = JSON.parse((await post(KEY_B, { prompt: 'still not yours', max_tokens: 3 })).body).job_id;
    await page.waitForSelector(`tr[data-job-id="${mine}"][data-state="completed"]`, { timeout: 10_000 });

    // Watching a job the page did not submit: its stream is read with the key (no signed URL for it).
    await page.click(`tr[data-job-id="${mine}"] code`);
    await page.waitForSelector('#watch-tokens .end', { timeout: 10_000 });
    expect(
      (await page.locator('#watch-tokens span:not(.end)').allTextContents()).map((t) => t.trim()),
    ).toEqual(['one', 'two', 'three', 'one', 'two', 'three']);
    expect(await page.textContent('#watch-state')).toBe('completed');
    await page.click('#watch-close');

    // A prompt submitted from the page streams into the output, in order, and is listed.
    await page.fill('#prompt', 'alpha beta gamma delta');
    await page.fill('#delay-ms', '30');
    await page.click('#submit-button');
    await page.waitForFunction(
      () => document.querySelector('#output-state')?.textContent === 'completed',
      undefined,
      { timeout: 10_000 },
    );
    const text = await page.locator('#output-tokens span:not(.end)').allTextContents();
    expect(text.map((t) => t.trim())).toEqual(['alpha', 'beta', 'gamma', 'delta']);
    const submitted = (await page.textContent('#output-id'))!;
    await page.waitForSelector(`tr[data-job-id="${submitted}"][data-state="completed"]`, { timeout: 10_000 });
    expect(server.registry.getJob(submitted)?.owner).toBe(server.principals[0]);

    expect(await page.locator(`tr[data-job-id="${other1}"]`).count()).toBe(0);
    expect(await page.locator(`tr[data-job-id="${other2}"]`).count()).toBe(0);
    expect(await page.locator('tr[data-job-id]').count()).toBe(2);

    // The key survives a reload of the tab; "Forget API key" asks for one again.
    await page.reload();
    await page.waitForSelector(`tr[data-job-id="${submitted}"]`, { timeout: 10_000 });
    await page.click('#key-forget');
    await page.waitForSelector('#conn[data-state="locked"]', { timeout: 10_000 });
    expect(await page.locator('tr[data-job-id]').count()).toBe(0);
    expect(await page.evaluate(() => sessionStorage.getItem('job-registry.api-key'))).toBeNull();
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);
});
