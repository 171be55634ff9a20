/**
 * Warm snapshots for fast refill. One VM is booted per (image, machine settings) with its RAM in a
 * file (`ram.bin`, a `share=on` memory backend), its agent is waited for until Ready (Python up,
 * libraries imported), the VM is paused and its device state is written with QEMU's migration
 * (`state.bin`, about half a megabyte: the RAM is left out, it is already in its file), next to
 * the scratch disk as it was at that instant. A session is then a new QEMU that maps `ram.bin`
 * copy-on-write (snapshot-memory.ts), loads `state.bin`, and gets a fresh overlay on top of the
 * frozen scratch disk, so RAM and disk agree. Nothing is copied: a restore costs a QEMU start.
 *
 * Layout: `<cacheDir>/vm/snapshots/<key>/{ram.bin,state.bin,disk.qcow2,meta.json}`; `meta.json` is
 * written last and marks a complete snapshot. The key hashes everything the saved state depends on.
 */

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

import { BackendError } from '../../src/errors.js';
import { saveState } from './migration.js';
import type { GuestImage, MachineSettings } from './qemu-command.js';
import { launchVm } from './vm-launcher.js';

const execFileAsync = promisify(execFile);

/** Bump when the way snapshots are made changes. */
const SNAPSHOT_RECIPE = 4;

export interface SnapshotInfo {
  readonly key: string;
  readonly dir: string;
  /** Guest RAM as a file, mapped copy-on-write by restored VMs. */
  readonly ram: string;
  /** Device state (migration stream without the RAM, `x-ignore-shared`). */
  readonly state: string;
  readonly disk: string;
  readonly meta: SnapshotMeta;
}

export interface SnapshotMeta {
  readonly key: string;
  readonly createdAt: string;
  /** Cold boot to agent-ready of the VM that was saved, in ms. */
  readonly bootMs: number;
  /** Time to write the device state, in ms. */
  readonly saveMs: number;
  /** Size of `ram.bin` (the guest's RAM size) and of `state.bin`. */
  readonly ramBytes: number;
  readonly stateBytes: number;
  readonly qemuVersion: string;
  /** The guest image it was made from (setup prunes snapshots of images it removed). */
  readonly imageHash: string;
}

export function snapshotKey(parts: { image: GuestImage; machine: MachineSettings; diskMb: number; qemuVersion: string }): string {
  return createHash('sha256')
    .update(
      JSON.stringify({
        recipe: SNAPSHOT_RECIPE,
        image: parts.image.hash,
        machine: parts.machine,
        diskMb: parts.diskMb,
        qemu: parts.qemuVersion,
      }),
    )
    .digest('hex')
    .slice(0, 20);
}

export async function qemuVersion(qemu: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync(qemu, ['--version']);
    return stdout.split('\n')[0]?.trim() ?? 'unknown';
  } catch (error) {
    throw new BackendError(`QEMU (${qemu}) cannot be run: ${(error as Error).message}`, {
      cause: error,
      code: 'SANDPOOL_BACKEND_UNAVAILABLE',
    });
  }
}

/**
 * An empty ext4 file system of `diskMb` (sparse), the bottom of every session's scratch disk.
 * No journal: the disk is thrown away with the session, so crash consistency buys nothing.
 */
export async function ensureScratchTemplate(cacheDir: string, diskMb: number): Promise<string> {
  const path = join(cacheDir, 'vm', `scratch-${diskMb}m.ext4`);
  if (existsSync(path)) return path;
  mkdirSync(join(cacheDir, 'vm'), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    await execFileAsync('mkfs.ext4', [
      '-q',
      '-F',
      '-O',
      '^has_journal',
      '-E',
      'lazy_itable_init=0,nodiscard',
      '-L',
      'scratch',
      tmp,
      `${diskMb}M`,
    ]);
    renameSync(tmp, path);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw new BackendError(`cannot create the scratch disk template (mkfs.ext4): ${(error as Error).message}`, { cause: error });
  }
  return path;
}

export function loadSnapshot(cacheDir: string, key: string): SnapshotInfo | undefined {
  const dir = join(cacheDir, 'vm', 'snapshots', key);
  const metaPath = join(dir, 'meta.json');
  if (!existsSync(metaPath)) return undefined;
  try {
    const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as SnapshotMeta;
    const ram = join(dir, 'ram.bin');
    const state = join(dir, 'state.bin');
    const disk = join(dir, 'disk.qcow2');
    if (meta.key !== key || statSync(ram).size !== meta.ramBytes || statSync(state).size !== meta.stateBytes) return undefined;
    if (!existsSync(disk)) return undefined;
    return { key, dir, ram, state, disk, meta };
  } catch {
    return undefined;
  }
}

async function delay(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

export interface BuildSnapshotOptions {
  readonly qemu: string;
  readonly qemuImg: string;
  readonly qemuVersion: string;
  readonly image: GuestImage;
  readonly machine: MachineSettings;
  readonly diskMb: number;
  readonly cacheDir: string;
  readonly readyTimeoutMs: number;
  readonly signal?: AbortSignal | undefined;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Build the snapshot unless another process is already building it (a lock file holding the
 * builder's pid): then wait for that one, taking over if its builder dies.
 */
export async function buildSnapshot(options: BuildSnapshotOptions): Promise<SnapshotInfo> {
  const key = snapshotKey({
    image: options.image,
    machine: options.machine,
    diskMb: options.diskMb,
    qemuVersion: options.qemuVersion,
  });
  const lock = join(options.cacheDir, 'vm', 'snapshots', `${key}.lock`);
  mkdirSync(dirname(lock), { recursive: true });
  const deadline = Date.now() + options.readyTimeoutMs * 2;
  for (;;) {
    const done = loadSnapshot(options.cacheDir, key);
    if (done !== undefined) return done;
    let fd: number | undefined;
    try {
      fd = openSync(lock, 'wx');
    } catch {
      const owner = Number.parseInt(readFileSafe(lock), 10);
      if (Number.isInteger(owner) && owner > 0 && !pidAlive(owner)) rmSync(lock, { force: true });
      if (Date.now() > deadline) throw new BackendError(`timed out waiting for another process to build snapshot ${key}`);
      if (options.signal?.aborted) throw new BackendError('snapshot build aborted');
      await delay(500);
      continue;
    }
    try {
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return loadSnapshot(options.cacheDir, key) ?? (await buildLocked(options, key));
    } finally {
      rmSync(lock, { force: true });
    }
  }
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

async function buildLocked(options: BuildSnapshotOptions, key: string): Promise<SnapshotInfo> {
  const finalDir = join(options.cacheDir, 'vm', 'snapshots', key);
  // A short name: the build VM's agent and QMP sockets live in it, and a unix socket path must stay
  // under 108 bytes however deep the cache is (setup's preflight checks the cache leaves room).
  const dir = join(options.cacheDir, 'vm', 'snapshots', `.b${process.pid}-${Date.now().toString(36)}`);
  mkdirSync(dir, { recursive: true });
  const ram = join(dir, 'ram.bin');
  const state = join(dir, 'state.bin');
  if (/['\n,]/.test(dir)) throw new BackendError(`unusable cache path for snapshots: ${dir}`);
  const template = await ensureScratchTemplate(options.cacheDir, options.diskMb);
  let vm: Awaited<ReturnType<typeof launchVm>> | undefined;
  try {
    vm = await launchVm({
      qemu: options.qemu,
      qemuImg: options.qemuImg,
      image: options.image,
      machine: options.machine,
      dir,
      backing: { path: template, format: 'raw' },
      // The guest writes its RAM straight into the snapshot's file.
      memory: { saveTo: ram },
      // `exec:` migration spawns a shell; this VM never ran session code.
      sandbox: false,
      readyTimeoutMs: options.readyTimeoutMs,
      signal: options.signal,
    });
    const bootMs = vm.startupMs;
    // Hang up so the agent goes back to waiting for a connection: a restored VM then treats the
    // host's first frame as a new connection.
    vm.agent.close();
    await delay(500);
    const saveStarted = Date.now();
    await saveState(vm.qmp, `exec:cat > '${state}'`, { ignoreShared: true });
    const saveMs = Date.now() - saveStarted;
    await vm.qmp.execute('quit').catch(() => undefined);
    await vm.process.exited;
    vm.qmp.close();
    const meta: SnapshotMeta = {
      key,
      createdAt: new Date().toISOString(),
      bootMs,
      saveMs,
      ramBytes: statSync(ram).size,
      stateBytes: statSync(state).size,
      qemuVersion: options.qemuVersion,
      imageHash: options.image.hash,
    };
    // Only the stream, the frozen disk and the meta file are kept (sockets and state go).
    for (const leftover of ['agent.sock', 'qmp.sock']) rmSync(join(dir, leftover), { force: true });
    writeFileSync(join(dir, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
    rmSync(finalDir, { recursive: true, force: true });
    renameSync(dir, finalDir);
    const loaded = loadSnapshot(options.cacheDir, key);
    if (loaded === undefined) throw new BackendError('the snapshot just written cannot be read back');
    return loaded;
  } catch (error) {
    vm?.agent.close();
    vm?.qmp.close();
    await vm?.process.kill();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
