// Setup step 30: the VM backend's host packages and guest image.
//   - Debian packages: QEMU (system emulator + qemu-img), the Debian kernel the guest boots,
//     busybox-static for the initramfs, squashfs-tools/cpio to pack the image, e2fsprogs for the
//     per-session scratch disks, debootstrap for the fallback rootfs.
//   - The guest image (images/vm/build-image.mjs), rebuilt only when its recipe changes.
// Snapshots are not built here: they depend on pool settings (memory, vCPUs, network), so the
// backend's prepare() builds and caches them on first use.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { aptInstall } from './lib/apt.mjs';
import { cacheUnreadableByQemu } from './lib/cache.mjs';

const PACKAGES = [
  'qemu-system-x86',
  'qemu-utils',
  'linux-image-amd64',
  'busybox-static',
  'squashfs-tools',
  'cpio',
  'e2fsprogs',
  'debootstrap',
  'util-linux',
];

export default async function setup({ root, log }) {
  if (process.platform !== 'linux') {
    log('skipped: the guest image is built on Linux only (see docs/VM.md)');
    return;
  }
  if (process.env.SANDPOOL_SKIP_VM === '1') {
    log('skipped (SANDPOOL_SKIP_VM=1)');
    return;
  }
  // Also checked before the first step (scripts/setup.mjs); again here for callers of this step alone.
  const unreadable = cacheUnreadableByQemu();
  if (unreadable !== undefined) throw new Error(unreadable);
  await aptInstall(PACKAGES, log);
  const { ensureVmImage } = await import(pathToFileURL(join(root, 'images', 'vm', 'build-image.mjs')).href);
  const started = Date.now();
  const image = await ensureVmImage({ root, log });
  const seconds = (Date.now() - started) / 1000;
  if (seconds > 1) log(`guest image ${image.hash} ready in ${seconds.toFixed(1)} s (${image.dir})`);
}
