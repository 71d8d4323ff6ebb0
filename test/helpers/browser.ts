import { existsSync } from 'node:fs';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** Whether the browser test can run here. In CI it must: a missing Chromium fails instead of skipping. */
export function haveChromium(): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (process.env.CI === 'true')
    throw new Error(`Chromium is required in CI but ${CHROMIUM} is missing (.ci/run installs it)`);
  console.warn(`SKIPPING browser tests: ${CHROMIUM} not found (apt-get install chromium)`);
  return false;
}
