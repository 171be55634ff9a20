/**
 * The QEMU command line of one session VM. Everything is explicit (`-nodefaults -no-user-config`):
 * the guest gets exactly a CPU, RAM, two virtio disks (read-only base, per-session scratch overlay),
 * one virtio-serial port for the agent, an entropy source, a VM generation id, a serial console
 * read by the host, and a NIC only when egress is enabled. No 9p/virtiofs, no USB, no display.
 */

import { join } from 'node:path';

import type { Accelerator } from './accelerator.js';

export interface GuestImage {
  /** Content hash of the image recipe (kernel, initrd, base disk). */
  readonly hash: string;
  readonly kernel: string;
  readonly initrd: string;
  /** Read-only squashfs root filesystem. */
  readonly base: string;
}

/** Settings that shape the virtual machine; a snapshot is only valid for the same settings. */
export interface MachineSettings {
  readonly accelerator: Accelerator;
  readonly memoryMb: number;
  readonly cpus: number;
  readonly egress: boolean;
}

export interface CommandOptions {
  readonly image: GuestImage;
  readonly machine: MachineSettings;
  /** The session directory: sockets live here. */
  readonly dir: string;
  /** qcow2 overlay the guest writes to (its upper layer and /mnt/data). */
  readonly scratch: string;
  /** Apply QEMU's seccomp sandbox (`-sandbox on,...`). */
  readonly sandbox: boolean;
  /** Arguments appended to the agent's command line inside the guest (kernel command line). */
  readonly extraKernelArgs?: readonly string[] | undefined;
}

export const AGENT_PORT_NAME = 'sandpool.agent';

export function agentSocketPath(dir: string): string {
  return join(dir, 'agent.sock');
}

export function qmpSocketPath(dir: string): string {
  return join(dir, 'qmp.sock');
}

/**
 * CPU model: the host's own under hardware acceleration; under TCG `max`, every feature TCG
 * emulates. Not QEMU's default `qemu64`: it advertises an AMD-flavoured feature set (3dnowprefetch,
 * svm) for which OpenBLAS picks kernels that die with SIGILL under TCG (numpy `@`, matplotlib).
 */
function cpuModel(accelerator: Accelerator): string[] {
  if (accelerator === 'kvm' || accelerator === 'hvf') return ['-cpu', 'host'];
  if (accelerator === 'tcg') return ['-cpu', 'max'];
  return [];
}

export function qemuArgs(options: CommandOptions): string[] {
  const { image, machine, dir } = options;
  const vcpus = Math.max(1, Math.ceil(machine.cpus));
  const kernelArgs = [
    'console=ttyS0',
    'panic=-1',
    'quiet',
    'loglevel=3',
    '8250.nr_uarts=1',
    'i8042.noaux',
    'i8042.nokbd',
    'random.trust_cpu=on',
    ...(options.extraKernelArgs ?? []),
  ];
  const args = [
    '-name',
    `sandpool,debug-threads=off`,
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-msg',
    'timestamp=off',
    '-M',
    'pc,usb=off,vmport=off,smbus=off',
    '-accel',
    machine.accelerator,
    ...cpuModel(machine.accelerator),
    '-m',
    String(machine.memoryMb),
    '-smp',
    String(vcpus),
    '-kernel',
    image.kernel,
    '-initrd',
    image.initrd,
    '-append',
    kernelArgs.join(' '),
    // Console: QEMU's stdout, read (and bounded) by the host for diagnostics.
    '-chardev',
    'stdio,id=console,signal=off',
    '-serial',
    'chardev:console',
    '-drive',
    `file=${image.base},format=raw,if=none,id=base,readonly=on,cache=none,aio=threads`,
    '-device',
    'virtio-blk-pci,drive=base',
    // The overlay dies with the session: flushes buy nothing, so skip them.
    '-drive',
    `file=${options.scratch},format=qcow2,if=none,id=scratch,cache=unsafe,discard=unmap`,
    '-device',
    'virtio-blk-pci,drive=scratch',
    '-device',
    'virtio-serial-pci,id=vser0,max_ports=2',
    '-chardev',
    `socket,id=agent,path=${agentSocketPath(dir)},server=on,wait=off`,
    '-device',
    `virtserialport,bus=vser0.0,chardev=agent,name=${AGENT_PORT_NAME}`,
    '-object',
    'rng-random,id=rng0,filename=/dev/urandom',
    '-device',
    'virtio-rng-pci,rng=rng0',
    // A new generation id on every start, restored VMs included: the guest kernel reseeds its RNG,
    // so clones of one snapshot do not share random state.
    '-device',
    'vmgenid,guid=auto',
    '-qmp',
    `unix:${qmpSocketPath(dir)},server=on,wait=off`,
  ];
  if (machine.egress) {
    // User-mode networking (slirp): outbound TCP/UDP via the QEMU process, no host forwarding.
    args.push('-netdev', 'user,id=net0,ipv6=off', '-device', 'virtio-net-pci,netdev=net0');
  }
  if (options.sandbox) {
    args.push('-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny');
  }
  return args;
}
