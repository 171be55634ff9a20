/**
 * Debian packages for setup steps: install what is missing, refreshing stale package lists once,
 * and finishing a dpkg run an earlier setup was interrupted in (apt refuses to do anything until
 * `dpkg --configure -a` has run, and a half-configured package is not installed).
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

import { run } from './run.mjs';

/** Which of these Debian packages are not fully installed on the host. */
export function missingPackages(packages) {
  let status = '';
  try {
    status = readFileSync('/var/lib/dpkg/status', 'utf8');
  } catch {
    return [...packages];
  }
  const installed = new Set();
  for (const block of status.split('\n\n')) {
    const name = /^Package: (\S+)/m.exec(block)?.[1];
    if (name !== undefined && /^Status: install ok installed/m.test(block)) installed.add(name);
  }
  return packages.filter((p) => !installed.has(p));
}

const LOCK_WAIT = ['-o', 'DPkg::Lock::Timeout=900'];
const ENV = { DEBIAN_FRONTEND: 'noninteractive' };

const POLICY = '/usr/sbin/policy-rc.d';

/**
 * apt-get install what is missing (no recommends). `startServices: false` keeps packages that ship
 * a system service (docker.io: dockerd on /var/run/docker.sock) from starting it while apt runs,
 * with a policy-rc.d that exits 101 (the host's own one, if any, is left alone).
 */
export async function aptInstall(packages, log, { startServices = true } = {}) {
  const missing = missingPackages(packages);
  if (missing.length === 0) return;
  const ownPolicy = !startServices && !existsSync(POLICY);
  if (ownPolicy)
    writeFileSync(POLICY, '#!/bin/sh\n# sandpool setup: do not start services while installing\nexit 101\n', { mode: 0o755 });
  try {
    await installMissing(missing, log);
  } finally {
    if (ownPolicy) rmSync(POLICY, { force: true });
  }
}

async function installMissing(missing, log) {
  log(`apt-get install ${missing.join(' ')}`);
  const install = () =>
    run('apt-get', ['install', '-y', '-q', ...LOCK_WAIT, '--no-install-recommends', ...missing], { env: ENV });
  try {
    await install();
    return;
  } catch (error) {
    log(`apt-get install failed; finishing any interrupted dpkg run and refreshing the package lists (${firstLine(error)})`);
  }
  await run('dpkg', ['--configure', '-a'], { env: ENV });
  await run('apt-get', ['update', '-q', ...LOCK_WAIT], { env: ENV });
  await install();
  const still = missingPackages(missing);
  if (still.length > 0) throw new Error(`apt-get ran but ${still.join(', ')} is still not installed`);
}

function firstLine(error) {
  return String(error.message ?? error)
    .split('\n')
    .at(-1);
}
