// Debian's Chromium for the /ui/ status-page test (playwright-core drives it; no browser is
// downloaded). Idempotent: nothing to do when /usr/bin/chromium exists.
import { existsSync } from 'node:fs';

import { aptInstall } from './lib/apt.mjs';

const BROWSER = '/usr/bin/chromium';

export default async function setup({ log }) {
  if (existsSync(BROWSER)) return;
  if (process.platform !== 'linux' || !existsSync('/usr/bin/apt-get')) {
    log(`skipping: ${BROWSER} is missing and this is not a Debian host; the status-page test needs it`);
    return;
  }
  if (process.getuid?.() !== 0)
    throw new Error(`${BROWSER} is missing: run "apt-get install chromium" as root (the status-page test needs it)`);
  log('installing Debian chromium for the status-page test');
  await aptInstall(['chromium'], log);
  if (!existsSync(BROWSER)) throw new Error(`apt-get installed chromium but ${BROWSER} is still missing`);
}
