/**
 * The headless Chromium the browser tests, the dashboard benchmark and the screenshot script launch:
 * Debian's `chromium` (`CHROMIUM_PATH` overrides the path) with flags that keep it from reaching out to
 * the network on its own.
 */
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
