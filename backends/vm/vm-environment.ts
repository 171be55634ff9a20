/**
 * Backend-wide, lazily resolved facts: the guest image on disk, the QEMU binaries and version, the
 * accelerator, and one warm snapshot per machine-settings key. Each is computed once and shared by
 * every create() that needs it.
 */

import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';

import { BackendError, ErrorCode } from '../../src/errors.js';
import { ACCELERATORS, chooseAccelerator, hostBootId, type Accelerator, type AcceleratorChoice } from './accelerator.js';
import type { GuestImage, MachineSettings } from './qemu-command.js';
import { buildSnapshot, ensureScratchTemplate, loadSnapshot, qemuVersion, snapshotKey, type SnapshotInfo } from './snapshot.js';
import { SnapshotMemory } from './snapshot-memory.js';

export interface EnvironmentOptions {
  readonly qemu: string;
  readonly qemuImg: string;
  readonly cacheDir: string;
  /** Path of an image manifest.json, or of the `current.json` pointer written by setup. */
  readonly imageManifest: string;
  readonly accelerator: Accelerator | 'auto';
  readonly probeTimeoutMs: number;
  readonly readyTimeoutMs: number;
  /** Session QEMUs run as other users: hand them the snapshot RAM sealed (snapshot-memory.ts). */
  readonly sealSnapshotMemory: boolean;
}

export interface Environment {
  readonly image: GuestImage;
  readonly qemuVersion: string;
  readonly accelerator: AcceleratorChoice;
}

const unavailable = (message: string, cause?: unknown): BackendError =>
  new BackendError(message, { code: ErrorCode.BACKEND_UNAVAILABLE, cause });

export function loadImage(manifestPath: string): GuestImage {
  let path = manifestPath;
  try {
    const first = JSON.parse(readFileSync(path, 'utf8')) as { manifest?: string };
    if (typeof first.manifest === 'string') path = first.manifest;
    const manifest = JSON.parse(readFileSync(path, 'utf8')) as { hash?: string; kernel?: string; initrd?: string; base?: string };
    const dir = dirname(path);
    const resolve = (p: string | undefined): string => {
      if (typeof p !== 'string' || p.length === 0) throw new Error('manifest is missing a path');
      return isAbsolute(p) ? p : join(dir, p);
    };
    const image = {
      hash: String(manifest.hash),
      kernel: resolve(manifest.kernel),
      initrd: resolve(manifest.initrd),
      base: resolve(manifest.base),
    };
    for (const file of [image.kernel, image.initrd, image.base]) {
      if (!existsSync(file)) throw new Error(`${file} is missing`);
    }
    return image;
  } catch (error) {
    throw unavailable(
      `the VM guest image is not available (${manifestPath}): ${(error as Error).message}. Run \`npm run setup\` to build it.`,
      error,
    );
  }
}

/**
 * An unprivileged QEMU (a uid of its own) must read the image and the snapshot cache: every
 * directory above them must be searchable and every file readable by "others". Checked up front so
 * that a private cache directory (mode 0700) gives this message instead of QEMU's "permission denied".
 */
export function assertReadableByOthers(paths: readonly string[]): void {
  for (const path of paths) {
    let current = path;
    for (;;) {
      let mode: number;
      try {
        const stat = statSync(current);
        mode = stat.mode;
        const needed = stat.isDirectory() ? 0o001 : 0o004;
        if ((mode & needed) === 0) {
          throw unavailable(
            `${current} (mode ${(mode & 0o777).toString(8)}) is not readable by the unprivileged QEMU user; ` +
              `make it world-${stat.isDirectory() ? 'searchable (chmod o+x)' : 'readable (chmod o+r)'} or pass unprivilegedQemu: false`,
          );
        }
      } catch (error) {
        if (error instanceof BackendError) throw error;
        break; // A missing path is reported by whoever needs it.
      }
      const parent = dirname(current);
      if (parent === current) break;
      current = parent;
    }
  }
}

export class VmEnvironment {
  readonly options: EnvironmentOptions;
  #environment: Promise<Environment> | undefined;
  readonly #snapshots = new Map<string, Promise<SnapshotInfo>>();
  /** The mapped RAM of each snapshot in use, by snapshot key; closed by close(). */
  readonly #memories = new Map<string, Promise<SnapshotMemory>>();

  constructor(options: EnvironmentOptions) {
    this.options = options;
  }

  /** Image, QEMU and accelerator; computed once (a failure is retried on the next call). */
  async environment(): Promise<Environment> {
    this.#environment ??= (async () => {
      const image = loadImage(this.options.imageManifest);
      const version = await qemuVersion(this.options.qemu).catch((error: unknown) => {
        throw unavailable(`QEMU is not installed or cannot run (${this.options.qemu}): ${(error as Error).message}`, error);
      });
      const accelerator =
        this.options.accelerator === 'auto'
          ? await this.#probedAccelerator(image, version)
          : await chooseAccelerator({
              qemu: this.options.qemu,
              kernel: image.kernel,
              timeoutMs: 0,
              forced: this.options.accelerator,
            });
      return { image, qemuVersion: version, accelerator };
    })();
    try {
      return await this.#environment;
    } catch (error) {
      this.#environment = undefined;
      throw error;
    }
  }

  /**
   * The probe result is cached on disk per host boot, QEMU version and kernel: a hanging KVM costs
   * the probe timeout, and every process (test workers, server restarts) would pay it again.
   */
  async #probedAccelerator(image: GuestImage, version: string): Promise<AcceleratorChoice> {
    const file = join(this.options.cacheDir, 'vm', 'accelerator-probe.json');
    const key = JSON.stringify({ boot: hostBootId(), qemu: this.options.qemu, version, kernel: image.hash });
    try {
      const cached = JSON.parse(readFileSync(file, 'utf8')) as { key?: string; choice?: AcceleratorChoice };
      if (cached.key === key && cached.choice !== undefined && ACCELERATORS.includes(cached.choice.accelerator)) {
        return { accelerator: cached.choice.accelerator, reason: `${cached.choice.reason} (cached probe)` };
      }
    } catch {
      // No cache yet.
    }
    const choice = await chooseAccelerator({
      qemu: this.options.qemu,
      kernel: image.kernel,
      timeoutMs: this.options.probeTimeoutMs,
    });
    try {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(`${file}.${process.pid}`, JSON.stringify({ key, choice }));
      renameSync(`${file}.${process.pid}`, file);
    } catch {
      // A read-only cache only costs the next process another probe.
    }
    return choice;
  }

  /** The warm snapshot for these settings, building it on first use. */
  async snapshot(machine: MachineSettings, diskMb: number, signal?: AbortSignal): Promise<SnapshotInfo> {
    const env = await this.environment();
    const key = snapshotKey({ image: env.image, machine, diskMb, qemuVersion: env.qemuVersion });
    let pending = this.#snapshots.get(key);
    if (pending === undefined) {
      pending = (async () =>
        loadSnapshot(this.options.cacheDir, key) ??
        (await buildSnapshot({
          qemu: this.options.qemu,
          qemuImg: this.options.qemuImg,
          qemuVersion: env.qemuVersion,
          image: env.image,
          machine,
          diskMb,
          cacheDir: this.options.cacheDir,
          readyTimeoutMs: this.options.readyTimeoutMs,
          signal,
        })))();
      this.#snapshots.set(key, pending);
      pending.catch(() => this.#snapshots.delete(key));
    }
    return await pending;
  }

  /** The RAM of `snapshot`, ready to be mapped by restored VMs; made once per snapshot. */
  async snapshotMemory(snapshot: SnapshotInfo): Promise<SnapshotMemory> {
    let memory = this.#memories.get(snapshot.key);
    if (memory === undefined) {
      memory = SnapshotMemory.open(snapshot.ram, this.options.sealSnapshotMemory);
      this.#memories.set(snapshot.key, memory);
      memory.catch(() => this.#memories.delete(snapshot.key));
    }
    return await memory;
  }

  /** Forget a snapshot that failed to restore, so the next use rebuilds it. */
  invalidateSnapshot(key: string): void {
    this.#snapshots.delete(key);
    const memory = this.#memories.get(key);
    this.#memories.delete(key);
    // QEMUs already started keep their own reference; only ours goes.
    void memory?.then((m) => m.close()).catch(() => undefined);
  }

  /** Release the snapshot memories (call once no VM is being started any more). */
  async close(): Promise<void> {
    const memories = [...this.#memories.values()];
    this.#memories.clear();
    for (const memory of await Promise.allSettled(memories)) if (memory.status === 'fulfilled') memory.value.close();
  }

  async scratchTemplate(diskMb: number): Promise<string> {
    return await ensureScratchTemplate(this.options.cacheDir, diskMb);
  }
}
