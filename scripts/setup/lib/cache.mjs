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
  // The VM backend builds snapshots in `<cache>/vm/snapshots/.b<pid>-<time>/` with the build VM's
  // unix sockets in it (backends/vm/snapshot.ts), and a socket path must stay under 108 bytes.
  const socket = `${cache}/vm/snapshots/.b4194304-${'z'.repeat(8)}/agent.sock`;
  if (Buffer.byteLength(socket) > 107) {
    return (
      `the cache folder ${cache} cannot be used by the VM backend: its path is too long (${Buffer.byteLength(cache)} bytes) ` +
      `for the unix sockets of the VM it builds snapshots with (at most ${107 - (Buffer.byteLength(socket) - Buffer.byteLength(cache))} bytes); ` +
      'use a shorter SANDPOOL_CACHE_DIR, or set SANDPOOL_SKIP_VM=1 to set up without the VM backend'
    );
  }
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
