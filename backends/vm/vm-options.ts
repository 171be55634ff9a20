/** Options of `VMBackend`, validated with zod like the pool's and every other backend's. */

import { z } from 'zod';

import type { BackendLogEvent } from '../../src/backend.js';
import { parseOrThrow } from '../../src/options.js';
import { defaultRunDir } from './run-dir.js';

/** Smallest guest RAM that runs the kernel, the agent and a Python kernel with its preloads. */
export const MIN_VM_MEMORY_MB = 192;

export const VMBackendOptionsSchema = z
  .object({
    /** QEMU system emulator. @default "qemu-system-x86_64" */
    qemu: z.string().min(1).default('qemu-system-x86_64'),
    /** @default "qemu-img" */
    qemuImg: z.string().min(1).default('qemu-img'),
    /** `auto` probes kvm/whpx/hvf for real and falls back to tcg. @default "auto" */
    accelerator: z.enum(['auto', 'kvm', 'whpx', 'hvf', 'tcg']).default('auto'),
    /** Image and snapshot cache. @default $SANDPOOL_CACHE_DIR or /var/cache/sandpool */
    cacheDir: z
      .string()
      .min(1)
      .default(() => process.env['SANDPOOL_CACHE_DIR'] ?? '/var/cache/sandpool'),
    /** Guest image manifest. @default <cacheDir>/vm/current.json (written by `npm run setup`) */
    imageManifest: z.string().min(1).optional(),
    /** Per-session sockets, overlays and state files. @default $SANDPOOL_VM_RUN_DIR or <tmpdir>/sandpool-vm */
    runDir: z.string().min(1).default(defaultRunDir),
    /** Restore sessions from a warm snapshot. @default true */
    snapshots: z.boolean().default(true),
    /** Cold boot (or restore) to agent-ready budget. @default 300 000 (TCG boots with imports take ~1 min) */
    readyTimeoutMs: z.number().int().min(1000).max(3_600_000).default(300_000),
    /** Budget of each hardware-accelerator probe. @default 8 000 */
    probeTimeoutMs: z.number().int().min(100).max(600_000).default(8000),
    /** QEMU seccomp sandbox for session VMs (QEMU's -sandbox is seccomp: Linux only). @default true on Linux */
    sandbox: z.boolean().default(() => process.platform === 'linux'),
    /**
     * When the backend runs as root on Linux, run each session's QEMU as its own unprivileged uid
     * (see run-dir.ts sessionUid). @default true
     */
    unprivilegedQemu: z.boolean().default(true),
    /**
     * EgressEnabled sessions are confined by a host firewall (egress-firewall.ts: no host services,
     * private networks or metadata service), which needs Linux, root and iptables. Where it cannot be
     * installed, EgressEnabled is refused unless this is true. @default false
     */
    allowUnconfinedEgress: z.boolean().default(false),
    /** Diagnostics (accelerator choice, TCG warning, snapshot fallbacks). @default warnings to stderr */
    onLog: z.custom<(event: BackendLogEvent) => void>((v) => typeof v === 'function', 'must be a function').optional(),
  })
  .strict();

export type VMBackendOptions = z.input<typeof VMBackendOptionsSchema>;
export type ResolvedVMOptions = z.output<typeof VMBackendOptionsSchema> & { readonly imageManifest: string };

/** @throws {InvalidOptionsError} naming every invalid option */
export function resolveVMOptions(input: VMBackendOptions): ResolvedVMOptions {
  const o = parseOrThrow(VMBackendOptionsSchema, input, 'VMBackend options');
  return { ...o, imageManifest: o.imageManifest ?? `${o.cacheDir}/vm/current.json` };
}
