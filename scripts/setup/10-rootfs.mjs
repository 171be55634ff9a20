/**
 * Shared code-interpreter root filesystem (setup step 10), reused by the container image (step 20)
 * and by the VM backend's disk/initramfs.
 *
 *   import { ensureRootfs } from './10-rootfs.mjs';
 *   const { dir, tar, hash, buildId } = await ensureRootfs({ log });
 *
 * - `dir`  a Debian bookworm minbase tree (root-owned, do not modify it in place: copy it or
 *          overlay it) with Python 3 + numpy, pandas, matplotlib, scipy, scikit-learn, seaborn,
 *          sympy, pillow, openpyxl, bs4, lxml, requests, dill (session pause), and Node.js; a `sandbox` user (uid 1000)
 *          with home /home/sandbox; /mnt/data and /opt/sandpool exist.
 * - `tar`  the same tree as an uncompressed tar with numeric owners (what `podman import` takes).
 * - `hash` 16 hex digits of the recipe (package list, mirror suite, RECIPE_VERSION): the tree is
 *          rebuilt only when it changes, under `${SANDPOOL_CACHE_DIR:-/var/cache/sandpool}/rootfs/<hash>/`.
 *
 * - `buildId` identifies this build of the tree (see buildId below); images made from it carry it.
 *
 * Building takes a few minutes (debootstrap + apt in a chroot), once; a finished build is marked
 * by a `complete` stamp, so a crashed build is redone, and concurrent callers (two setups, the VM
 * and container steps) serialise on a lock file whose dead holder is detected (lib/fs-safe.mjs). Older builds are left in place for now (they are
 * ~1 GiB each; `rm -rf` the cache dir to reclaim).
 * The agent is NOT part of this tree: consumers add agent/ on top, so agent edits do not redo apt.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { aptInstall, missingPackages } from './lib/apt.mjs';
import { cacheRoot } from './lib/cache.mjs';
import { removeTree, withLock } from './lib/fs-safe.mjs';
import { run } from './lib/run.mjs';

// Kept here for the steps and scripts that import them from this module.
export { aptInstall, cacheRoot, missingPackages };

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

export function rootfsHash() {
  const recipe = JSON.stringify({ RECIPE_VERSION, SUITE, packages: [...ROOTFS_PACKAGES].sort() });
  return createHash('sha256').update(recipe).digest('hex').slice(0, 16);
}

/** The Debian mirror this host already uses (no other network is reachable). */
export function debianMirror() {
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
 * Identity of one build of the rootfs: its `complete` stamp (the time it finished) hashed. Images
 * made from a rootfs carry it, so a new build, e.g. in a new empty cache, is never mistaken for an
 * older one with the same recipe.
 */
function buildId(final) {
  return createHash('sha256')
    .update(readFileSync(join(final, 'complete')))
    .digest('hex')
    .slice(0, 12);
}

/**
 * Make sure the cached rootfs for the current recipe exists; build it when missing. A build runs
 * in `<hash>.building` and becomes `<hash>` by one rename once its `complete` stamp is written, so
 * a killed build is never taken for a finished one; the next run removes its leftovers (processes
 * still in it, /proc and /sys debootstrap mounted inside it) and starts over.
 * @returns {Promise<{ dir: string, tar: string, hash: string, buildId: string }>}
 */
export async function ensureRootfs({ log = (m) => process.stderr.write(`[rootfs] ${m}\n`) } = {}) {
  const hash = rootfsHash();
  const base = join(cacheRoot(), 'rootfs');
  const final = join(base, hash);
  const result = () => ({ dir: join(final, 'root'), tar: join(final, 'rootfs.tar'), hash, buildId: buildId(final) });
  if (existsSync(join(final, 'complete'))) return result();
  mkdirSync(base, { recursive: true });
  return withLock(join(base, `${hash}.lock`), log, async () => {
    if (existsSync(join(final, 'complete'))) return result();
    for (const tool of ['debootstrap', 'chroot', 'tar']) {
      if (!existsSync(`/usr/sbin/${tool}`) && !existsSync(`/usr/bin/${tool}`)) {
        throw new Error(`${tool} is not installed (apt-get install debootstrap)`);
      }
    }
    const work = join(base, `${hash}.building`);
    if (existsSync(work)) log(`removing ${work}: a build that did not finish`);
    await removeTree(work, log);
    await removeTree(final, log);
    mkdirSync(work, { recursive: true });
    const started = Date.now();
    await build(work, log);
    writeFileSync(join(work, 'complete'), new Date().toISOString());
    renameSync(work, final);
    log(`rootfs ${hash} built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return result();
  });
}

/** Setup step: build the shared rootfs (needs debootstrap). */
export default async function setup({ log }) {
  if (process.getuid?.() !== 0) throw new Error('building the rootfs needs root (debootstrap, chroot)');
  await aptInstall(['debootstrap'], log);
  const { dir, hash } = await ensureRootfs({ log });
  log(`rootfs ${hash} ready at ${dir}`);
}
