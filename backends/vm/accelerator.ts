/**
 * Picks QEMU's accelerator. `/dev/kvm` existing proves nothing: on some hosts (nested virtualisation
 * without the right CPU features, like the machine this project is tested on) KVM opens fine and
 * then hangs the guest. So each hardware candidate is probed for real: boot the guest kernel with no
 * root disk and `panic=-1 -no-reboot`, which makes QEMU exit within about a second with working
 * acceleration. A candidate that does not exit in time is rejected and the next one is tried; TCG
 * (software emulation) always works and is the last resort.
 */

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

export type Accelerator = 'kvm' | 'whpx' | 'hvf' | 'tcg';
export const ACCELERATORS: readonly Accelerator[] = ['kvm', 'whpx', 'hvf', 'tcg'];

export interface AcceleratorChoice {
  readonly accelerator: Accelerator;
  /** Why this one: probe results of the candidates tried before it, or "forced by option". */
  readonly reason: string;
}

/** Hardware accelerators worth trying on this platform, best first. */
export function hardwareCandidates(platform: NodeJS.Platform = process.platform): Accelerator[] {
  if (platform === 'linux') return ['kvm'];
  if (platform === 'win32') return ['whpx'];
  if (platform === 'darwin') return ['hvf'];
  return [];
}

export interface ProbeOptions {
  readonly qemu: string;
  readonly kernel: string;
  readonly timeoutMs: number;
}

/** Boot the kernel to its "no root" panic under `accelerator`; resolves with an error text, or null when it works. */
export async function probeAccelerator(accelerator: Accelerator, options: ProbeOptions): Promise<string | null> {
  const args = [
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-M',
    'pc',
    '-accel',
    accelerator,
    '-m',
    '128',
    '-kernel',
    options.kernel,
    '-append',
    'console=ttyS0 panic=-1 quiet loglevel=0',
    '-serial',
    'null',
  ];
  return await new Promise<string | null>((resolve) => {
    const child = spawn(options.qemu, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < 4096) stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(
        `${accelerator}: the probe guest did not finish within ${options.timeoutMs} ms (accelerator present but not running guests)`,
      );
    }, options.timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve(`${accelerator}: ${error.message}`);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(null);
      else if (signal !== 'SIGKILL') resolve(`${accelerator}: QEMU exited with ${code ?? signal}: ${firstLine(stderr)}`);
    });
  });
}

function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .find((l) => l.trim().length > 0 && !l.includes('warning'))
      ?.trim() ?? 'no message'
  );
}

/** Identifies this boot of the host, so a cached probe result is redone after a reboot. */
export function hostBootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

const cache = new Map<string, Promise<AcceleratorChoice>>();

/**
 * The accelerator to use: `forced` when given (no probe; the caller asked for it), else the first
 * hardware candidate whose probe passes, else TCG. Results are memoised per process and kernel.
 */
export async function chooseAccelerator(
  options: ProbeOptions & { readonly forced?: Accelerator | undefined },
): Promise<AcceleratorChoice> {
  if (options.forced !== undefined) return { accelerator: options.forced, reason: 'forced by option' };
  const key = `${options.qemu}\0${options.kernel}`;
  let choice = cache.get(key);
  if (choice === undefined) {
    choice = (async () => {
      const failures: string[] = [];
      for (const candidate of hardwareCandidates()) {
        const failure = await probeAccelerator(candidate, options);
        if (failure === null) return { accelerator: candidate, reason: 'hardware acceleration probe passed' };
        failures.push(failure);
      }
      return {
        accelerator: 'tcg' as const,
        reason: failures.length > 0 ? failures.join('; ') : `no hardware accelerator for ${process.platform}`,
      };
    })();
    cache.set(key, choice);
  }
  return await choice;
}
