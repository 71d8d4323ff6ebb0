/**
 * Regenerates docs/dashboard.png: starts the example server on a free port, runs a few jobs through it
 * (streaming, finished, failed, cancelled), opens the dashboard in headless Chromium, watches a running
 * job, and takes the screenshot the README shows.
 *
 * Usage: npx tsx scripts/screenshot.ts [out.png]   (CHROMIUM_PATH overrides /usr/bin/chromium)
 */
import { chromium } from 'playwright-core';
import { startServer } from '../examples/inference-server.js';
import { CHROMIUM, CHROMIUM_FLAGS } from './chromium.js';

const out = process.argv[2] ?? 'docs/dashboard.png';
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const server = await startServer({ port: 0, logger: quiet });
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: CHROMIUM_FLAGS,
});
try {
  const post = async (body: object): Promise<string> => {
    const res = await fetch(`${server.url}/v1/inference`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return ((await res.json()) as { job_id: string }).job_id;
  };
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
  await page.goto(server.url + '/');
  await page.waitForSelector('#conn[data-state="live"]');

  // Half a minute of history for the charts: waves of short jobs, long ones streaming, a failure, a cancel.
  const prompt = 'The quick brown fox jumps over the lazy dog';
  let watched = '';
  for (let wave = 0; wave < 14; wave++) {
    for (let i = 0; i < 1 + (wave % 4); i++)
      await post({ prompt, max_tokens: 20 + 15 * i, delay_ms: 30 + 10 * i });
    if (wave === 3) await post({ prompt: 'this one fails', max_tokens: 20, fail_after: 4, delay_ms: 40 });
    if (wave === 5) watched = await post({ prompt, max_tokens: 2000, delay_ms: 45 });
    if (wave === 7) {
      const cancelled = await post({ prompt, max_tokens: 2000, delay_ms: 30 });
      setTimeout(() => void fetch(`${server.url}/v1/inference/${cancelled}`, { method: 'DELETE' }), 6000);
    }
    if (wave >= 8 && wave % 2 === 0) await post({ prompt, max_tokens: 2000, delay_ms: 20 + 5 * wave });
    await sleep(2000);
  }

  // The watched job is further down the list by now: find it by id, open it, then list everything again.
  await page.fill('#search', watched);
  await page.click(`tr[data-job-id="${watched}"] code`);
  await page.fill('#search', '');
  await page.waitForFunction(() => document.querySelectorAll('#watch-tokens span').length > 20);
  await sleep(1500);
  await page.locator('h2').first().click(); // no focus ring in the picture
  await page.screenshot({ path: out, fullPage: true });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await server.close();
}
