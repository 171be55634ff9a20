/** Options of `VMBackend` and its diagnostics events. */

import type { Accelerator } from './accelerator.js';

/** Smallest guest RAM that runs the kernel, the agent and a Python kernel with its preloads. */
export const MIN_VM_MEMORY_MB = 192;

export interface VmLogEvent {
  readonly level: 'info' | 'warn';
  readonly message: string;
  readonly sessionId?: string | undefined;
}

export interface VMBackendOptions {
  /** QEMU system emulator. @default "qemu-system-x86_64" */
  readonly qemu?: string | undefined;
  /** @default "qemu-img" */
  readonly qemuImg?: string | undefined;
  /** `auto` probes kvm/whpx/hvf for real and falls back to tcg. @default "auto" */
  readonly accelerator?: Accelerator | 'auto' | undefined;
  /** Image and snapshot cache. @default $SANDPOOL_CACHE_DIR or /var/cache/sandpool */
  readonly cacheDir?: string | undefined;
  /** Guest image manifest. @default <cacheDir>/vm/current.json (written by `npm run setup`) */
  readonly imageManifest?: string | undefined;
  /** Per-session sockets, overlays and state files. @default $SANDPOOL_VM_RUN_DIR or <tmpdir>/sandpool-vm */
  readonly runDir?: string | undefined;
  /** Restore sessions from a warm snapshot. @default true */
  readonly snapshots?: boolean | undefined;
  /** Cold boot (or restore) to agent-ready budget. @default 300 000 (TCG boots with imports take ~1 min) */
  readonly readyTimeoutMs?: number | undefined;
  /** Budget of each hardware-accelerator probe. @default 8 000 */
  readonly probeTimeoutMs?: number | undefined;
  /** QEMU seccomp sandbox for session VMs. @default true on Linux */
  readonly sandbox?: boolean | undefined;
  /**
   * When the backend runs as root on Linux, run each session's QEMU as its own unprivileged uid
   * (see run-dir.ts sessionUid). @default true
   */
  readonly unprivilegedQemu?: boolean | undefined;
  /**
   * EgressEnabled sessions are confined by a host firewall (egress-firewall.ts: no host services,
   * private networks or metadata service), which needs Linux, root and iptables. Where it cannot be
   * installed, EgressEnabled is refused unless this is true. @default false
   */
  readonly allowUnconfinedEgress?: boolean | undefined;
  /** Diagnostics (accelerator choice, TCG warning, snapshot fallbacks). @default warnings to stderr */
  readonly onLog?: ((event: VmLogEvent) => void) | undefined;
}
