/**
 * The seccomp profile applied to every container session (code-interpreter and custom): sandpool's
 * own, derived from the engine default (derive.ts lists what changes; scripts/seccomp-profile.ts
 * regenerates profile.json). Podman's compat API takes the profile as a path on the engine's host,
 * Docker's as the JSON text itself; sessions need a local engine anyway (bind-mounted sockets).
 */

import { readFileSync } from 'node:fs';

import { InvalidOptionsError } from '../../../src/errors.js';
import type { SeccompProfile } from './derive.js';
import shipped from './profile.json' with { type: 'json' };

export { deriveSeccompProfile, type SeccompProfile } from './derive.js';

/** sandpool's profile as shipped in backends/container/seccomp/profile.json. */
export const SANDPOOL_SECCOMP_PROFILE: SeccompProfile = shipped as SeccompProfile;

/** The profile's JSON text: sandpool's, or an operator's own file (`seccompProfile` option). */
export function seccompProfileJson(path: string | undefined): string {
  if (path === undefined) return JSON.stringify(SANDPOOL_SECCOMP_PROFILE);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new InvalidOptionsError(`seccompProfile: cannot read ${path} as JSON: ${(error as Error).message}`);
  }
  const p = parsed as Partial<SeccompProfile> | null;
  if (typeof p !== 'object' || p === null || typeof p.defaultAction !== 'string' || !Array.isArray(p.syscalls)) {
    throw new InvalidOptionsError(`seccompProfile: ${path} is not a seccomp profile (it needs defaultAction and syscalls)`);
  }
  if (p.defaultAction === 'SCMP_ACT_ALLOW') {
    throw new InvalidOptionsError(`seccompProfile: ${path} allows every system call by default`);
  }
  return JSON.stringify(parsed);
}
