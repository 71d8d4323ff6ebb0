import { existsSync } from 'node:fs';

import { CHROMIUM } from '../../scripts/chromium.js';

export { CHROMIUM, CHROMIUM_FLAGS } from '../../scripts/chromium.js';

/** Whether the browser test can run here. In CI it must: a missing Chromium fails instead of skipping. */
export function haveChromium(): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (process.env.CI === 'true')
    throw new Error(`Chromium is required in CI but ${CHROMIUM} is missing (.ci/run installs it)`);
  console.warn(`SKIPPING browser tests: ${CHROMIUM} not found (apt-get install chromium)`);
  return false;
}
