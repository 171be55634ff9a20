/**
 * The sandpool cache folder (`SANDPOOL_CACHE_DIR`, default /var/cache/sandpool): the rootfs, the
 * VM guest image and the VM snapshots.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export function cacheRoot() {
  return resolve(process.env.SANDPOOL_CACHE_DIR || '/var/cache/sandpool');
}

/**
 * When setup runs as root, the VM backend starts each session's QEMU as a uid of its own, with no
 * other rights (backends/vm: `unprivilegedQemu`, run-dir.ts `sessionUid`): that QEMU opens the
 * kernel, initrd, base disk and snapshot in the cache by path. So every folder from / down to the
 * cache must be searchable by others (o+x). A cache under a private folder (`mktemp -d` makes 0700
 * ones) would build for minutes and then fail at the first VM boot with "Permission denied";
 * refuse it before anything is built. Returns the reason, or undefined when the cache is fine.
 */
export function cacheUnreadableByQemu(cache = cacheRoot()) {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return undefined;
  for (let current = cache; ; current = dirname(current)) {
    if (existsSync(current)) {
      const { mode } = statSync(current);
      if ((mode & 0o001) === 0) {
        return (
          `the cache folder ${cache} cannot be used by the VM backend: ${current} (mode ${(mode & 0o777).toString(8)}) ` +
          'is not searchable by other users, and each VM session runs QEMU as an unprivileged uid of its own that must ' +
          `open the guest image in the cache. Use a cache under a world-searchable folder, run \`chmod o+x ${current}\`, ` +
          'or set SANDPOOL_SKIP_VM=1 to set up without the VM backend'
        );
      }
    }
    if (dirname(current) === current) return undefined;
  }
}
