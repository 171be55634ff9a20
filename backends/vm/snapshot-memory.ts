/**
 * The guest RAM of a warm snapshot, mapped copy-on-write into every restored VM instead of copied.
 *
 * The snapshot's RAM is a plain file (`ram.bin`, written through a `share=on` memory backend while
 * the snapshot VM ran). A restored VM maps it with `memory-backend-file,share=off`: pages the guest
 * only reads stay the file's pages, shared by every VM restored from it (one copy in the page
 * cache); a page the guest writes becomes private to that VM. A restore therefore moves no memory
 * at all, and idle VMs share the snapshot's clean pages.
 *
 * QEMU 7.2 opens `mem-path` read-write even for a private mapping, and a session's QEMU runs as its
 * own unprivileged uid. Giving it a writable snapshot would let a guest that escapes into QEMU
 * poison every later session, so on Linux the backend hands it a *sealed memfd* instead: a copy of
 * the RAM file in anonymous shared memory that nobody can write any more (F_SEAL_WRITE,
 * F_SEAL_GROW, F_SEAL_SHRINK, F_SEAL_SEAL). QEMU reopens it through `/proc/self/fd/N` read-write,
 * which succeeds, and maps it privately, which sealing allows; `write()` and shared writable
 * mappings fail. The memfd is made once per snapshot and backend by a few lines of Perl (Node
 * cannot call memfd_create; perl-base is part of every Debian system) and closed with the backend.
 * Where QEMU runs as the backend's own user (not root, or unprivilegedQemu off) the file itself is
 * mapped: that QEMU could write the cache anyway.
 */

import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

import { BackendError } from '../../src/errors.js';

/** The RAM block's id on the QEMU command line; equal on save and restore, as migration requires. */
const RAM_ID = 'ram0';

/** Where a restored VM's RAM comes from. */
export type MemorySource =
  /** A file the snapshot VM wrote; restore maps it privately. */
  | { readonly kind: 'file'; readonly path: string }
  /** A sealed memfd held by this process; QEMU inherits it as `fd` and reopens it through /proc. */
  | { readonly kind: 'memfd'; readonly hostFd: number };

/**
 * QEMU arguments for guest RAM of `memoryMb` backed by `path`: `share=on` while building a
 * snapshot (the guest writes through to the file), `share=off` when restoring (copy-on-write).
 */
export function memoryBackendArgs(memoryMb: number, path: string, share: boolean): string[] {
  if (/[,\n]/.test(path)) throw new BackendError(`unusable snapshot memory path: ${path}`);
  return [
    '-object',
    `memory-backend-file,id=${RAM_ID},size=${memoryMb}M,mem-path=${path},share=${share ? 'on' : 'off'}`,
    '-machine',
    `memory-backend=${RAM_ID}`,
  ];
}

/**
 * QEMU arguments for plain anonymous guest RAM under the same block id, for VMs that load a stream
 * holding all of their RAM (a paused session's checkpoint of a snapshot-restored VM).
 */
export function anonymousMemoryArgs(memoryMb: number): string[] {
  return ['-object', `memory-backend-ram,id=${RAM_ID},size=${memoryMb}M`, '-machine', `memory-backend=${RAM_ID}`];
}

/** memfd_create's system call number per architecture (the only non-portable detail). */
const MEMFD_CREATE: Partial<Record<NodeJS.Architecture, number>> = { x64: 319, arm64: 279 };

// Copies ARGV[0] into a new memfd, skipping all-zero 64 KiB blocks (they stay holes and cost no
// memory), seals it, prints "<pid> <fd>" and waits for stdin to close so the parent can reopen
// the memfd through /proc/<pid>/fd/<fd> first. 1033 = F_ADD_SEALS; 15 = SEAL|SHRINK|GROW|WRITE;
// 3 = MFD_CLOEXEC|MFD_ALLOW_SEALING.
const SEALER = `
use strict;
my ($file, $nr) = @ARGV;
my $name = "sandpool-snapshot-ram";
my $fd = syscall($nr, $name, 3);
die "memfd_create: $!\\n" if $fd < 0;
open(my $out, "+<&=", $fd) or die "fdopen: $!\\n";
open(my $in, "<", $file) or die "open $file: $!\\n";
binmode $in; binmode $out;
my $zero = "\\0" x 65536; my ($buf, $off) = ("", 0);
while (my $n = sysread($in, $buf, 65536)) {
  if ($buf ne substr($zero, 0, $n)) {
    sysseek($out, $off, 0) or die "seek: $!\\n";
    syswrite($out, $buf) == $n or die "write: $!\\n";
  }
  $off += $n;
}
truncate($out, $off) or die "truncate: $!\\n";
defined fcntl($out, 1033, 15) or die "seal: $!\\n";
$| = 1; print "$$ $fd\\n"; my $wait = <STDIN>;
`;

/**
 * A sealed memfd holding a copy of `file`, opened in this process (the returned fd; close it with
 * closeSync). Rejects with a BackendError when the platform cannot do it.
 */
export function sealedMemfdCopy(file: string, timeoutMs = 60_000): Promise<number> {
  const nr = MEMFD_CREATE[process.arch];
  if (process.platform !== 'linux' || nr === undefined) {
    return Promise.reject(
      new BackendError(`sealed memfds need Linux on x64 or arm64 (this is ${process.platform}/${process.arch})`),
    );
  }
  return new Promise<number>((resolve, reject) => {
    const child = spawn('perl', ['-e', SEALER, file, String(nr)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let settled = false;
    const timer = setTimeout(
      () => finish(new BackendError('copying the snapshot memory into a sealed memfd timed out')),
      timeoutMs,
    );
    const finish = (error: Error | undefined, fd?: number): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.stdin.end();
      if (error !== undefined) {
        child.kill('SIGKILL');
        reject(error);
      } else resolve(fd!);
    };
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-2000);
    });
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const match = /^(\d+) (\d+)\n/.exec(stdout);
      if (match === null) return;
      try {
        // Our own open file description of the same (sealed) memfd; the helper may exit now.
        finish(undefined, openSync(`/proc/${match[1]}/fd/${match[2]}`, 'r+'));
      } catch (error) {
        finish(new BackendError(`cannot open the sealed snapshot memory: ${(error as Error).message}`, { cause: error }));
      }
    });
    child.on('error', (error) => finish(new BackendError(`cannot run perl to seal the snapshot memory: ${error.message}`)));
    child.on('exit', (code) => {
      finish(new BackendError(`sealing the snapshot memory failed (perl exited with ${code}): ${stderr.trim()}`));
    });
  });
}

/** The memory source of one snapshot for as long as the backend uses it. */
export class SnapshotMemory {
  readonly source: MemorySource;
  #closed = false;

  private constructor(source: MemorySource) {
    this.source = source;
  }

  /** Seal a copy when QEMU runs as other users than us, else map the file itself. */
  static async open(ramFile: string, sealed: boolean): Promise<SnapshotMemory> {
    if (!sealed) return new SnapshotMemory({ kind: 'file', path: ramFile });
    return new SnapshotMemory({ kind: 'memfd', hostFd: await sealedMemfdCopy(ramFile) });
  }

  /**
   * QEMU arguments mapping this snapshot's RAM copy-on-write. `inheritedFd` is the descriptor
   * number the memfd has in the QEMU child (see `hostFd`); unused for a file.
   */
  restoreArgs(memoryMb: number, inheritedFd: number): string[] {
    const path = this.source.kind === 'file' ? this.source.path : `/proc/self/fd/${inheritedFd}`;
    return memoryBackendArgs(memoryMb, path, false);
  }

  /** The descriptor a QEMU child must inherit, if any. */
  get hostFd(): number | undefined {
    return this.source.kind === 'memfd' && !this.#closed ? this.source.hostFd : undefined;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.source.kind === 'memfd') closeSync(this.source.hostFd);
  }
}
