// Debian's Chromium for the /ui/ status-page test (playwright-core drives it; no browser is
// downloaded). Idempotent: nothing to do when /usr/bin/chromium exists.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const BROWSER = '/usr/bin/chromium';

function run(_log, command, args) {
  const result = spawnSync(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (result.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} failed (${result.status ?? result.signal}): ${(result.stderr || result.stdout).trim().split('\n').slice(-5).join('\n')}`,
    );
  }
  return result.stdout;
}

export default async function setup({ log }) {
  if (existsSync(BROWSER)) return;
  if (process.platform !== 'linux' || !existsSync('/usr/bin/apt-get')) {
    log(`skipping: ${BROWSER} is missing and this is not a Debian host; the status-page test needs it`);
    return;
  }
  if (process.getuid?.() !== 0)
    throw new Error(`${BROWSER} is missing: run "apt-get install chromium" as root (the status-page test needs it)`);
  log('installing Debian chromium for the status-page test');
  const install = () => run(log, 'apt-get', ['install', '-y', '--no-install-recommends', 'chromium']);
  try {
    install();
  } catch {
    // Package lists may be stale or absent on a fresh machine.
    run(log, 'apt-get', ['update']);
    install();
  }
  if (!existsSync(BROWSER)) throw new Error(`apt-get installed chromium but ${BROWSER} is still missing`);
}
