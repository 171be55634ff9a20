/**
 * The machine a session's limits and network policy ask for (guest RAM, vCPUs, a NIC or none), and
 * the host egress confinement an EgressEnabled VM needs before it may exist.
 */

import { InvalidOptionsError, UnsupportedError } from '../../src/errors.js';
import type { NetworkPolicy, SessionLimits } from '../../src/types.js';
import type { Accelerator } from './accelerator.js';
import { ensureEgressFirewall } from './egress-firewall.js';
import type { MachineSettings } from './qemu-command.js';
import type { BackendLogEvent } from '../../src/backend.js';
import { MIN_VM_MEMORY_MB } from './vm-options.js';

export interface MachineContext {
  readonly accelerator: Accelerator;
  /** Session QEMUs run as their own uids (the firewall matches on them). */
  readonly dropPrivileges: boolean;
  readonly allowUnconfinedEgress: boolean;
  readonly log: (event: BackendLogEvent) => void;
}

async function confineEgress(allowList: boolean, ctx: MachineContext): Promise<void> {
  try {
    if (!ctx.dropPrivileges) throw new Error('session QEMUs do not run as their own uids (backend not root)');
    await ensureEgressFirewall();
  } catch (error) {
    const reason = (error as Error).message;
    if (allowList)
      throw new UnsupportedError(`network.allow on VM sessions needs the host egress firewall, which is unavailable: ${reason}`);
    if (!ctx.allowUnconfinedEgress) {
      throw new UnsupportedError(
        `EgressEnabled VM sessions need the host egress firewall, which is unavailable: ${reason} (see docs/VM.md)`,
      );
    }
    ctx.log({ level: 'warn', message: `EgressEnabled VMs are NOT confined (they can reach host services): ${reason}` });
  }
}

export async function machineSettings(
  limits: Readonly<SessionLimits>,
  network: Readonly<NetworkPolicy>,
  ctx: MachineContext,
): Promise<MachineSettings> {
  if (limits.memoryMb < MIN_VM_MEMORY_MB) {
    throw new InvalidOptionsError(
      `vm sessions need at least ${MIN_VM_MEMORY_MB} MiB of memory (limits.memoryMb is ${limits.memoryMb})`,
    );
  }
  const allowList = network.egress === 'EgressEnabled' && network.allow.length > 0;
  if (network.egress === 'EgressEnabled') await confineEgress(allowList, ctx);
  return {
    accelerator: ctx.accelerator,
    memoryMb: limits.memoryMb,
    cpus: Math.max(1, Math.ceil(limits.cpus)),
    egress: network.egress === 'EgressEnabled',
  };
}
