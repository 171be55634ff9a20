/**
 * Pause and fork of VM sessions, at the machine level: QEMU's migration writes the whole machine
 * (RAM and device state) to a file, next to a copy of the session's disk overlay taken at the same
 * instant (the vCPUs are stopped and the block layer flushed in between). Restoring is a new QEMU
 * started from that stream with that disk, as a session is restored from the warm snapshot. Every
 * process, open file and socket inside the guest comes back exactly; nothing is `lost`.
 *
 * Session QEMUs run under seccomp with `spawn=deny`, so the stream cannot go through `exec:`; QEMU
 * connects to a one-shot unix socket the backend listens on in the session directory instead, and
 * the backend writes what arrives to the checkpoint file (0600), bounded by `maxBytes`.
 */

import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, createWriteStream, renameSync, rmSync, statSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import type { Checkpoint, CheckpointOptions } from '../../src/backend.js';
import { AbortedError, BackendError } from '../../src/errors.js';
import type { JsonValue } from '../../src/types.js';
import { saveState } from './migration.js';
import type { MachineSettings } from './qemu-command.js';
import type { QmpClient } from './qmp-client.js';

export const MEMORY_FILE = 'memory.bin';
export const DISK_FILE = 'disk.qcow2';

/** What a restore must match: the same machine, guest image and QEMU, and the same disk chain. */
export interface VmCheckpointMeta {
  readonly format: 1;
  readonly machine: MachineSettings;
  readonly diskMb: number;
  readonly imageHash: string;
  readonly qemuVersion: string;
  /** The warm snapshot the session's disk overlay is backed by (absent: a cold-booted session). */
  readonly snapshot?: { readonly key: string; readonly createdAt: string } | undefined;
  /** The RAM block layout the stream was saved from (restored VMs: `ram0`; cold-booted: QEMU's default). */
  readonly ram: 'ram0' | 'default';
}

function capped(maxBytes: number): Transform & { bytes: number } {
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      counter.bytes += chunk.length;
      if (counter.bytes > maxBytes) done(new BackendError(`the VM's state exceeds the checkpoint limit of ${maxBytes} bytes`));
      else done(null, chunk);
    },
  }) as Transform & { bytes: number };
  counter.bytes = 0;
  return counter;
}

/** Stop the VM and migrate it into `file` through a unix socket QEMU connects to. */
async function migrateToFile(
  qmp: QmpClient,
  sessionDir: string,
  file: string,
  options: { maxBytes: number; owner: { uid: number; gid: number } | undefined; signal?: AbortSignal | undefined },
): Promise<number> {
  const socketPath = join(sessionDir, `migrate-${randomBytes(4).toString('hex')}.sock`);
  const server = createServer();
  let connection: Socket | undefined;
  const counter = capped(options.maxBytes);
  const received = new Promise<void>((resolve, reject) => {
    server.once('connection', (conn) => {
      server.close();
      connection = conn;
      conn.on('error', () => undefined);
      pipeline(conn, counter, createWriteStream(file, { flags: 'wx', mode: 0o600 })).then(resolve, reject);
    });
  });
  received.catch(() => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  const onAbort = (): void => {
    void qmp.execute('migrate_cancel').catch(() => undefined);
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (options.owner !== undefined) chownSync(socketPath, options.owner.uid, options.owner.gid);
    // Every page goes into the stream (no x-ignore-shared): the session's RAM has left the snapshot's.
    await Promise.all([saveState(qmp, `unix:${socketPath}`, { ignoreShared: false }), received]);
    if (options.signal?.aborted) throw new AbortedError('checkpoint aborted');
    return counter.bytes;
  } catch (error) {
    await qmp.execute('migrate_cancel').catch(() => undefined);
    throw error;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    server.close();
    connection?.destroy();
    rmSync(socketPath, { force: true });
  }
}

/** Move (a pause) or copy (a fork) the disk overlay into the checkpoint, owned by us, 0600. */
function keepDisk(scratch: string, target: string, move: boolean): void {
  if (move) {
    try {
      renameSync(scratch, target);
    } catch {
      copyFileSync(scratch, target); // another file system
    }
  } else {
    copyFileSync(scratch, target);
  }
  if (process.getuid?.() === 0) chownSync(target, 0, 0);
  chmodSync(target, 0o600);
}

export interface RunningVm {
  readonly qmp: QmpClient;
  /** The session's disk overlay. */
  readonly scratch: string;
  readonly sessionDir: string;
  /** The uid the session's QEMU runs as (it connects to the migration socket). */
  readonly owner: { uid: number; gid: number } | undefined;
}

/**
 * Checkpoint a running VM into `options.dir`. With `final` the VM stays stopped and its overlay is
 * moved (the caller destroys the session next); otherwise its vCPUs run again afterwards.
 */
export async function checkpointVm(vm: RunningVm, meta: VmCheckpointMeta, options: CheckpointOptions): Promise<Checkpoint> {
  let resumed = false;
  const resume = async (): Promise<void> => {
    if (resumed) return;
    resumed = true;
    await vm.qmp.execute('cont');
  };
  try {
    const memory = join(options.dir, MEMORY_FILE);
    const disk = join(options.dir, DISK_FILE);
    await migrateToFile(vm.qmp, vm.sessionDir, memory, { maxBytes: options.maxBytes, owner: vm.owner, signal: options.signal });
    // The block layer was flushed and handed over when the migration completed: the overlay on
    // disk is exactly what the saved RAM expects.
    keepDisk(vm.scratch, disk, options.final);
    if (!options.final) await resume();
    // Plain JSON data (strings, numbers, booleans), stored by the pool next to the files.
    const json = { ...meta } as unknown as JsonValue;
    return { level: 'machine', bytes: statSync(memory).size + statSync(disk).size, lost: [], meta: json };
  } catch (error) {
    // A failed checkpoint leaves the session as it was, running (a pause that fails keeps it).
    await resume().catch(() => undefined);
    throw error;
  }
}

/** Why `meta` cannot be restored with the current machine and image, or undefined when it can. */
export function checkpointMismatch(
  meta: VmCheckpointMeta,
  current: Omit<VmCheckpointMeta, 'format' | 'snapshot' | 'ram'>,
): string | undefined {
  if (meta.format !== 1) return 'it was not written by the vm backend';
  if (meta.imageHash !== current.imageHash) return 'the guest image changed since it was taken';
  if (meta.qemuVersion !== current.qemuVersion) return `QEMU changed since it was taken (${meta.qemuVersion})`;
  const a = meta.machine;
  const b = current.machine;
  if (a.memoryMb !== b.memoryMb || a.cpus !== b.cpus || a.egress !== b.egress || a.accelerator !== b.accelerator) {
    return 'the pool’s machine settings (memory, vCPUs, network, accelerator) differ from the paused session’s';
  }
  if (meta.diskMb !== current.diskMb) return 'the pool’s disk size differs from the paused session’s';
  if (meta.ram !== 'ram0' && meta.ram !== 'default') return 'it does not say how its RAM was laid out';
  return undefined;
}
