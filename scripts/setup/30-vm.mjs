// Setup step 30: the VM backend's host packages and guest image.
//   - Debian packages: QEMU (system emulator + qemu-img), the Debian kernel the guest boots,
//     busybox-static for the initramfs, squashfs-tools/cpio to pack the image, e2fsprogs for the
//     per-session scratch disks, debootstrap for the fallback rootfs.
//   - The guest image (images/vm/build-image.mjs), rebuilt only when its recipe changes.
// Snapshots are not built here: they depend on pool settings (memory, vCPUs, network), so the
// backend's prepare() builds and caches them on first use.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

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

function missingPackages() {
  return PACKAGES.filter((name) => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
    const result = spawnSync('dpkg-query', ['-W', '-f=${Status}', name], { encoding: 'utf8' });
    return result.status !== 0 || !result.stdout.includes('install ok installed');
  });
}

function apt(args, log) {
  const result = spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=600', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    maxBuffer: 64 << 20,
  });
  if (result.status !== 0) {
    log(result.stderr.trim().split('\n').slice(-10).join('\n'));
    throw new Error(`apt-get ${args.join(' ')} failed (exit ${result.status ?? result.signal})`);
  }
}

export default async function setup({ root, log }) {
  if (process.platform !== 'linux') {
    log('skipped: the guest image is built on Linux only (see docs/VM.md)');
    return;
  }
  if (process.env.SANDPOOL_SKIP_VM === '1') {
    log('skipped (SANDPOOL_SKIP_VM=1)');
    return;
  }
  const missing = missingPackages();
  if (missing.length > 0) {
    log(`installing ${missing.join(' ')}`);
    apt(['update', '-q'], log);
    apt(['install', '-y', '-q', '--no-install-recommends', ...missing], log);
  }
  const { ensureVmImage } = await import(pathToFileURL(join(root, 'images', 'vm', 'build-image.mjs')).href);
  const started = Date.now();
  const image = await ensureVmImage({ root, log });
  const seconds = (Date.now() - started) / 1000;
  if (seconds > 1) log(`guest image ${image.hash} ready in ${seconds.toFixed(1)} s (${image.dir})`);
}
