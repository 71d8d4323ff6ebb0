import { mkdirSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { startServer, type RunningServer } from '../../examples/inference-server.js';
import { CHROMIUM, CHROMIUM_FLAGS, haveChromium } from '../helpers/browser.js';
import { describeIf } from '../helpers/collect.js';
import { postJson } from '../helpers/http.js';

describeIf(haveChromium())('dashboard in headless Chromium', () => {
  let server: RunningServer;
  let browser: Browser;
  beforeAll(async () => {
    server = await startServer({ port: 0 });
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
    await page.click('#submit-button');
    await page.waitForFunction(
      () => (document.querySelector('#output-tokens')?.childElementCount ?? 0) >= 3,
      undefined,
      { timeout: 10_000 },
    );
    const cancelledId = (await page.textContent('#output-id'))!;
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
    // The running job's token count climbs live (the list is refreshed while jobs run).
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
});
