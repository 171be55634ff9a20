/**
 * Shared settings of the VM tests. Every VM test file uses the same machine settings so that one
 * warm snapshot (built once, cached on disk) serves them all; under TCG a cold boot with the
 * scientific Python preloads takes about a minute, a restore about a second.
 */
import { existsSync, readFileSync } from 'node:fs';

import { VMBackend, type VMBackendOptions } from '../../backends/vm/index.js';
import type { SessionSpec } from '../../src/backend.js';
import { NetworkPolicySchema, SessionLimitsSchema, type SessionLimitsInput } from '../../src/options.js';

export const VM_LIMITS = { memoryMb: 512, cpus: 1, diskMb: 1024 } as const;

/** Generous: TCG on a loaded 2-core machine. */
export const CREATE_TIMEOUT_MS = 420_000;
export const TEST_TIMEOUT_MS = 180_000;

const cacheDir = process.env['SANDPOOL_CACHE_DIR'] ?? '/var/cache/sandpool';

/** True when setup built the guest image (tests fail loudly otherwise: setup is part of npm test). */
export function vmImageBuilt(): boolean {
  const pointer = `${cacheDir}/vm/current.json`;
  if (!existsSync(pointer)) return false;
  const { manifest } = JSON.parse(readFileSync(pointer, 'utf8')) as { manifest: string };
  return existsSync(manifest);
}

export function makeVmBackend(options: VMBackendOptions = {}): VMBackend {
  return new VMBackend({ onLog: () => undefined, ...options });
}

let counter = 0;
export function vmSpec(
  ownerId: string,
  overrides: { limits?: SessionLimitsInput; egress?: 'EgressEnabled' | 'EgressDisabled' } = {},
): SessionSpec {
  counter += 1;
  return {
    sessionId: `vmtest-${process.pid}-${counter}`,
    poolName: 'vm-test',
    ownerId,
    containerType: 'PythonLTS',
    limits: SessionLimitsSchema.parse({ ...VM_LIMITS, ...overrides.limits }),
    network: NetworkPolicySchema.parse({ egress: overrides.egress ?? 'EgressDisabled' }),
  };
}
