/**
 * Shared code-interpreter root filesystem (setup step 10), reused by the container image (step 20)
 * and by the VM backend's disk/initramfs.
 *
 *   import { ensureRootfs } from './10-rootfs.mjs';
 *   const { dir, tar, hash } = await ensureRootfs({ log });
 *
 * - `dir`  a Debian bookworm minbase tree (root-owned, do not modify it in place: copy it or
 *          overlay it) with Python 3 + numpy, pandas, matplotlib, scipy, scikit-learn, seaborn,
 *          sympy, pillow, openpyxl, bs4, lxml, requests, dill (session pause), and Node.js; a `sandbox` user (uid 1000)
 *          with home /home/sandbox; /mnt/data and /opt/sandpool exist.
 * - `tar`  the same tree as an uncompressed tar with numeric owners (what `podman import` takes).
 * - `hash` 16 hex digits of the recipe (package list, mirror suite, RECIPE_VERSION): the tree is
 *          rebuilt only when it changes, under `${SANDPOOL_CACHE_DIR:-/var/cache/sandpool}/rootfs/<hash>/`.
 *
 * Building takes a few minutes (debootstrap + apt in a chroot), once; a finished build is marked
 * by a `complete` stamp, so a crashed build is redone, and concurrent callers (two setups, the VM
 * and container steps) serialise on a lock file. Older builds are left in place for now (they are
 * ~1 GiB each; `rm -rf` the cache dir to reclaim).
 * The agent is NOT part of this tree: consumers add agent/ on top, so agent edits do not redo apt.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Bump to force a rebuild when the build steps below change in a way the package list does not show. */
const RECIPE_VERSION = 1;
const SUITE = 'bookworm';

export const ROOTFS_PACKAGES = [
  'ca-certificates',
  'fonts-dejavu-core',
  'procps',
  'python3',
  'python3-dill',
  'python3-numpy',
  'python3-pandas',
  'python3-matplotlib',
  'python3-scipy',
  'python3-sklearn',
  'python3-seaborn',
  'python3-sympy',
  'python3-pil',
  'python3-openpyxl',
  'python3-bs4',
  'python3-lxml',
  'python3-requests',
  'nodejs',
];

export function cacheRoot() {
  return process.env.SANDPOOL_CACHE_DIR ?? '/var/cache/sandpool';
}

export function rootfsHash() {
  const recipe = JSON.stringify({ RECIPE_VERSION, SUITE, packages: [...ROOTFS_PACKAGES].sort() });
  return createHash('sha256').update(recipe).digest('hex').slice(0, 16);
}

/** The Debian mirror this host already uses (no other network is reachable). */
function debianMirror() {
  try {
    const text = readFileSync('/etc/apt/sources.list.d/debian.sources', 'utf8');
    const uri = /^URIs:\s*(\S+)/m.exec(text)?.[1];
    if (uri !== undefined && !uri.includes('security')) return uri;
  } catch {
    // fall through
  }
  try {
    const line = readFileSync('/etc/apt/sources.list', 'utf8').match(/^deb\s+(\S+)\s+\S+\s+main/m);
    if (line?.[1] !== undefined) return line[1];
  } catch {
    // fall through
  }
  return 'http://deb.debian.org/debian';
}

function run(command, args, { log, env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let tail = '';
    const keep = (chunk) => {
      tail = (tail + chunk.toString()).slice(-4000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else {
        log?.(`${command} output (tail):\n${tail}`);
        reject(new Error(`${command} ${args.slice(0, 6).join(' ')} … failed (${code ?? signal})`));
      }
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/** Exclusive lock by O_EXCL file holding our pid; a lock left by a dead process is taken over. */
async function withLock(path, log, fn) {
  for (let waited = 0; ; waited++) {
    try {
      const fd = openSync(path, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      const holder = Number(readFileSync(path, 'utf8').trim() || 'NaN');
      if (Number.isInteger(holder) && !pidAlive(holder)) {
        rmSync(path, { force: true });
        continue;
      }
      if (waited % 30 === 0) log(`waiting for another build (pid ${holder}) to finish`);
      await sleep(2000);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(path, { force: true });
  }
}

async function build(work, log) {
  const root = join(work, 'root');
  const mirror = debianMirror();
  const started = Date.now();
  log(`debootstrap ${SUITE} minbase from ${mirror} into ${root}`);
  await run('debootstrap', ['--variant=minbase', SUITE, root, mirror], { log });
  log(`debootstrap done in ${((Date.now() - started) / 1000).toFixed(0)} s; installing ${ROOTFS_PACKAGES.length} packages`);
  // Services must not start inside the chroot; dpkg fsyncs are pointless for a throwaway build.
  writeFileSync(join(root, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  const env = { DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C.UTF-8', PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
  const aptOpts = ['-o', 'Dpkg::Options::=--force-unsafe-io', '-o', 'APT::Install-Recommends=false'];
  await run('chroot', [root, 'apt-get', 'update', '-q'], { log, env });
  await run('chroot', [root, 'apt-get', 'install', '-y', '-q', ...aptOpts, ...ROOTFS_PACKAGES], { log, env });
  await run('chroot', [root, 'apt-get', 'clean'], { log, env });
  rmSync(join(root, 'usr/sbin/policy-rc.d'), { force: true });
  // The unprivileged user sessions run as; the data dir and agent dir the consumers fill.
  await run('chroot', [root, 'useradd', '--uid', '1000', '--create-home', '--shell', '/bin/sh', 'sandbox'], { log, env });
  mkdirSync(join(root, 'mnt/data'), { recursive: true });
  mkdirSync(join(root, 'opt/sandpool'), { recursive: true });
  // matplotlib's font cache, built once here (it is otherwise rebuilt at each first import).
  await run(
    'chroot',
    [root, 'su', '-s', '/bin/sh', 'sandbox', '-c', 'cd && MPLBACKEND=Agg python3 -c "import matplotlib.pyplot"'],
    {
      log,
      env,
    },
  );
  for (const dir of [
    'var/lib/apt/lists',
    'usr/share/doc',
    'usr/share/man',
    'usr/share/info',
    'var/cache/debconf/templates.dat-old',
  ]) {
    rmSync(join(root, dir), { recursive: true, force: true });
  }
  mkdirSync(join(root, 'var/lib/apt/lists/partial'), { recursive: true });
  log(`packages installed after ${((Date.now() - started) / 1000).toFixed(0)} s; writing tar`);
  await run('tar', ['--numeric-owner', '--xattrs', '-C', root, '-cf', join(work, 'rootfs.tar'), '.'], { log });
}

/**
 * Make sure the cached rootfs for the current recipe exists; build it when missing.
 * @returns {Promise<{ dir: string, tar: string, hash: string }>}
 */
export async function ensureRootfs({ log = (m) => process.stderr.write(`[rootfs] ${m}\n`) } = {}) {
  const hash = rootfsHash();
  const base = join(cacheRoot(), 'rootfs');
  const final = join(base, hash);
  const result = { dir: join(final, 'root'), tar: join(final, 'rootfs.tar'), hash };
  if (existsSync(join(final, 'complete'))) return result;
  mkdirSync(base, { recursive: true });
  return withLock(join(base, `${hash}.lock`), log, async () => {
    if (existsSync(join(final, 'complete'))) return result;
    for (const tool of ['debootstrap', 'chroot', 'tar']) {
      if (!existsSync(`/usr/sbin/${tool}`) && !existsSync(`/usr/bin/${tool}`)) {
        throw new Error(`${tool} is not installed (apt-get install debootstrap)`);
      }
    }
    const work = join(base, `${hash}.building`);
    rmSync(work, { recursive: true, force: true });
    rmSync(final, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const started = Date.now();
    await build(work, log);
    writeFileSync(join(work, 'complete'), new Date().toISOString());
    renameSync(work, final);
    log(`rootfs ${hash} built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return result;
  });
}

/** Which of these Debian packages are not installed on the host. */
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

/** apt-get install what is missing; refreshes the package lists once when they are stale. */
export async function aptInstall(packages, log) {
  const missing = missingPackages(packages);
  if (missing.length === 0) return;
  log(`apt-get install ${missing.join(' ')}`);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  const args = ['install', '-y', '-q', '-o', 'DPkg::Lock::Timeout=900', '--no-install-recommends', ...missing];
  try {
    await run('apt-get', args, { log, env });
  } catch {
    await run('apt-get', ['update', '-q', '-o', 'DPkg::Lock::Timeout=900'], { log, env });
    await run('apt-get', args, { log, env });
  }
}

/** Setup step: build the shared rootfs (needs debootstrap). */
export default async function setup({ log }) {
  if (process.getuid?.() !== 0) throw new Error('building the rootfs needs root (debootstrap, chroot)');
  await aptInstall(['debootstrap'], log);
  const { dir, hash } = await ensureRootfs({ log });
  log(`rootfs ${hash} ready at ${dir}`);
}
