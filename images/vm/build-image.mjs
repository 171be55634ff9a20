// Builds the microVM guest image from Debian packages, cached by a hash of its recipe:
//   - vmlinuz:     Debian's linux-image-amd64 kernel, as installed on the host (/boot).
//   - initrd.img:  busybox-static, the handful of virtio/ext4/squashfs/overlay modules the Debian kernel
//                  builds as modules, the stage-1 /init, stage 2, and the sandpool agent.
//   - base.sqfs:   the shared code-interpreter root filesystem as a read-only squashfs (lz4: cheapest
//                  to decompress under TCG). Cached apart from the initrd, so that an agent change
//                  rebuilds only the initrd (seconds), not the base disk.
// A manifest.json ties them together; `current.json` points at the newest one and is what the VM
// backend loads by default. Everything is plain files: no loop mounts, no root-only tricks beyond
// what debootstrap itself needs.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { removeStaleTemps, removeTree, withLock, writeFileAtomic } from '../../scripts/setup/lib/fs-safe.mjs';
import { run } from '../../scripts/setup/lib/run.mjs';

const here = dirname(fileURLToPath(import.meta.url));

/** Modules /init loads; their dependencies are added, in load order, from modules.dep. */
const WANTED_MODULES = [
  'kernel/drivers/virtio/virtio_pci.ko',
  'kernel/drivers/block/virtio_blk.ko',
  'kernel/drivers/char/virtio_console.ko',
  'kernel/drivers/char/hw_random/virtio-rng.ko',
  'kernel/fs/squashfs/squashfs.ko',
  'kernel/crypto/crc32c_generic.ko',
  'kernel/fs/ext4/ext4.ko',
  'kernel/fs/overlayfs/overlay.ko',
  'kernel/drivers/net/virtio_net.ko',
];

/** WANTED_MODULES plus dependencies, each after what it needs (modules.dep lists deps nearest first). */
function resolveModules(modulesDir) {
  const deps = new Map();
  for (const line of readFileSync(join(modulesDir, 'modules.dep'), 'utf8').split('\n')) {
    const [name, rest] = line.split(':');
    if (name && rest !== undefined) deps.set(name, rest.trim().split(/\s+/).filter(Boolean));
  }
  const ordered = [];
  const visit = (module) => {
    if (ordered.includes(module)) return;
    const needs = deps.get(module);
    if (needs === undefined) throw new Error(`kernel module ${module} not found in ${modulesDir}/modules.dep`);
    for (const dep of [...needs].reverse()) visit(dep);
    ordered.push(module);
  };
  for (const module of WANTED_MODULES) visit(module);
  return ordered;
}

export const DEFAULT_CACHE_DIR = process.env.SANDPOOL_CACHE_DIR ?? '/var/cache/sandpool';

function hashFile(hash, path) {
  hash.update(path.split('/').pop() ?? '').update(readFileSync(path));
}

function listFiles(dir, out = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === '__pycache__' || entry.name.endsWith('.pyc')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) listFiles(path, out);
    else if (entry.isFile()) out.push(path);
  }
  return out.sort();
}

/** The newest Debian kernel installed on the host: { version, vmlinuz, modulesDir }. */
export function findKernel() {
  const versions = existsSync('/boot')
    ? readdirSync('/boot')
        .filter((n) => /^vmlinuz-.*-amd64$/.test(n))
        .map((n) => n.slice('vmlinuz-'.length))
        .filter((v) => existsSync(`/lib/modules/${v}/modules.dep`))
    : [];
  versions.sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const version = versions.at(-1);
  if (version === undefined) throw new Error('no Debian kernel found in /boot (install linux-image-amd64)');
  return { version, vmlinuz: `/boot/vmlinuz-${version}`, modulesDir: `/lib/modules/${version}` };
}

/**
 * A small rootfs (debootstrap minbase + python3) used only while the shared code-interpreter rootfs
 * (scripts/setup/10-rootfs.mjs) is unavailable. Built once into the cache.
 */
async function ensureFallbackRootfs({ cacheDir, log }) {
  const recipe = 'debootstrap --variant=minbase bookworm + python3 (v1)';
  const hash = createHash('sha256').update(recipe).digest('hex').slice(0, 16);
  const dir = join(cacheDir, 'vm', `fallback-rootfs-${hash}`);
  if (existsSync(join(dir, '.complete'))) return { dir, hash: `fallback-${hash}` };
  log('building a minimal fallback rootfs (debootstrap minbase + python3)');
  // A build killed half-way may have left processes and /proc, /sys mounts inside it.
  await removeTree(dir, log);
  mkdirSync(dirname(dir), { recursive: true });
  const { debianMirror } = await import('../../scripts/setup/10-rootfs.mjs');
  await run('debootstrap', ['--variant=minbase', 'bookworm', dir, debianMirror()]);
  await run('chroot', [dir, 'apt-get', 'install', '-y', '--no-install-recommends', 'python3'], {
    env: { DEBIAN_FRONTEND: 'noninteractive' },
  });
  await run('chroot', [dir, 'apt-get', 'clean']);
  // Written last: without it the tree is a build that did not finish, and is redone.
  writeFileSync(join(dir, '.complete'), recipe);
  return { dir, hash: `fallback-${hash}` };
}

/** The shared code-interpreter rootfs when its setup step exists, else the fallback. */
async function resolveRootfs({ root, cacheDir, log }) {
  const shared = join(root, 'scripts', 'setup', '10-rootfs.mjs');
  if (existsSync(shared) && process.env.SANDPOOL_VM_FALLBACK_ROOTFS !== '1') {
    const mod = await import(pathToFileURL(shared).href);
    if (typeof mod.ensureRootfs === 'function') {
      const rootfs = await mod.ensureRootfs({ log });
      // The build id too: a rebuilt rootfs (same recipe) must give a new base disk.
      return { dir: rootfs.dir, hash: `${rootfs.hash}-${rootfs.buildId}`, shared: true };
    }
  }
  return { ...(await ensureFallbackRootfs({ cacheDir, log })), shared: false };
}

/** The read-only base disk; written to a temporary name and renamed, so a partial one is never used. */
async function ensureBase({ rootfs, cacheDir, log }) {
  const recipe = `mksquashfs -comp lz4 -noappend -no-xattrs (v2) ${rootfs.hash}`;
  const hash = createHash('sha256').update(recipe).digest('hex').slice(0, 16);
  const path = join(cacheDir, 'vm', `base-${hash}.sqfs`);
  if (existsSync(path)) return path;
  log(`building the read-only base disk from ${rootfs.dir}`);
  const tmp = `${path}.tmp-${process.pid}`;
  mkdirSync(dirname(path), { recursive: true });
  rmSync(tmp, { force: true });
  await run('mksquashfs', [
    rootfs.dir,
    tmp,
    '-comp',
    'lz4',
    '-noappend',
    '-no-xattrs',
    '-quiet',
    '-no-progress',
    '-e',
    'var/cache/apt/archives',
    'complete',
    '.complete',
  ]);
  renameSync(tmp, path);
  return path;
}

async function buildInitrd({ root, kernel, out }) {
  const staging = `${out}.staging`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(join(staging, 'bin'), { recursive: true });
  mkdirSync(join(staging, 'lib', 'modules'), { recursive: true });
  mkdirSync(join(staging, 'sandpool'), { recursive: true });
  cpSync('/bin/busybox', join(staging, 'bin', 'busybox'));
  const modules = resolveModules(kernel.modulesDir);
  for (const module of modules) cpSync(join(kernel.modulesDir, module), join(staging, 'lib', 'modules', basename(module)));
  writeFileSync(join(staging, 'modules.list'), `${modules.map((m) => basename(m)).join('\n')}\n`);
  cpSync(join(here, 'init'), join(staging, 'init'));
  await run('chmod', ['0755', join(staging, 'init'), join(staging, 'bin', 'busybox')]);
  cpSync(join(here, 'stage2'), join(staging, 'sandpool', 'stage2'));
  cpSync(join(root, 'agent'), join(staging, 'sandpool', 'agent'), {
    recursive: true,
    filter: (src) => !src.includes('__pycache__') && !src.endsWith('.pyc') && !src.includes(`${'/'}tests`),
  });
  const pack = 'set -o pipefail; cd "$1" && find . | sort | cpio -o -H newc -R 0:0 --quiet | gzip -1 > "$2"';
  await run('bash', ['-c', pack, 'bash', staging, out]);
  rmSync(staging, { recursive: true, force: true });
}

/**
 * Keep the current image and the one before it (a process started before this build may still use
 * it); remove older images, the snapshots made from removed images, and base disks no kept image
 * refers to. Snapshots are ~250 MB each, so they would otherwise pile up with every agent change.
 */
function pruneOldImages(cacheDir, keepHash, log) {
  const vmDir = join(cacheDir, 'vm');
  const images = readdirSync(vmDir)
    .filter((n) => /^image-[0-9a-f]+$/.test(n) && existsSync(join(vmDir, n, 'manifest.json')))
    .map((n) => ({ name: n, hash: n.slice('image-'.length), mtime: statSync(join(vmDir, n, 'manifest.json')).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  const keep = new Set([
    keepHash,
    ...images
      .filter((i) => i.hash !== keepHash)
      .slice(0, 1)
      .map((i) => i.hash),
  ]);
  const bases = new Set();
  for (const image of images) {
    if (keep.has(image.hash)) {
      bases.add(JSON.parse(readFileSync(join(vmDir, image.name, 'manifest.json'), 'utf8')).base);
      continue;
    }
    log(`removing old guest image ${image.hash}`);
    rmSync(join(vmDir, image.name), { recursive: true, force: true });
  }
  const snapshots = join(vmDir, 'snapshots');
  for (const name of existsSync(snapshots) ? readdirSync(snapshots) : []) {
    const meta = join(snapshots, name, 'meta.json');
    if (!existsSync(meta)) continue;
    const { imageHash } = JSON.parse(readFileSync(meta, 'utf8'));
    if (!keep.has(imageHash)) rmSync(join(snapshots, name), { recursive: true, force: true });
  }
  for (const name of readdirSync(vmDir).filter((n) => /^base-[0-9a-f]+\.sqfs$/.test(n))) {
    if (!bases.has(join(vmDir, name))) rmSync(join(vmDir, name), { force: true });
  }
}

/**
 * Ensure the guest image exists for the current recipe; returns its manifest. Idempotent and fast
 * (hashing only) when nothing changed.
 */
export async function ensureVmImage({ root, log = () => {}, cacheDir = DEFAULT_CACHE_DIR }) {
  for (const tool of ['mksquashfs', 'cpio', 'gzip']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is not installed`);
  }
  if (!existsSync('/bin/busybox')) throw new Error('busybox-static is not installed (/bin/busybox)');
  const kernel = findKernel();
  const vmDir = join(cacheDir, 'vm');
  mkdirSync(vmDir, { recursive: true });
  // Two setups at once (two terminals, a test and a start) build one after the other.
  return withLock(join(vmDir, 'build.lock'), log, () => buildLocked({ root, log, cacheDir, kernel }));
}

async function buildLocked({ root, log, cacheDir, kernel }) {
  const vmDir = join(cacheDir, 'vm');
  // A base disk or image folder whose build was killed (`*.tmp-<pid>`) is only garbage: remove it.
  await removeStaleTemps(vmDir, log);
  const rootfs = await resolveRootfs({ root, cacheDir, log });
  const base = await ensureBase({ rootfs, cacheDir, log });

  const hash = createHash('sha256');
  hash.update(`base:${basename(base)}\nkernel:${kernel.version}\n`);
  hashFile(hash, kernel.vmlinuz);
  hashFile(hash, '/bin/busybox');
  for (const module of resolveModules(kernel.modulesDir)) hash.update(module);
  for (const file of [join(here, 'init'), join(here, 'stage2'), fileURLToPath(import.meta.url)]) hashFile(hash, file);
  for (const file of listFiles(join(root, 'agent'))) hash.update(relative(root, file)).update(readFileSync(file));
  const imageHash = hash.digest('hex').slice(0, 20);

  const dir = join(cacheDir, 'vm', `image-${imageHash}`);
  const manifestPath = join(dir, 'manifest.json');
  if (!existsSync(manifestPath)) {
    log(`building guest image ${imageHash} (kernel ${kernel.version})`);
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    cpSync(kernel.vmlinuz, join(tmp, 'vmlinuz'));
    await buildInitrd({ root, kernel, out: join(tmp, 'initrd.img') });
    const manifest = {
      version: 1,
      hash: imageHash,
      kernelVersion: kernel.version,
      kernel: 'vmlinuz',
      initrd: 'initrd.img',
      base,
      baseFormat: 'squashfs',
      baseBytes: statSync(base).size,
      rootfs: { hash: rootfs.hash, shared: rootfs.shared },
      builtAt: new Date().toISOString(),
    };
    writeFileSync(join(tmp, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  }
  pruneOldImages(cacheDir, imageHash, log);
  const current = join(cacheDir, 'vm', 'current.json');
  const pointer = `${JSON.stringify({ manifest: manifestPath }, null, 2)}\n`;
  if (!existsSync(current) || readFileSync(current, 'utf8') !== pointer) {
    writeFileAtomic(current, pointer);
  }
  return { ...JSON.parse(readFileSync(manifestPath, 'utf8')), dir, manifestPath };
}
