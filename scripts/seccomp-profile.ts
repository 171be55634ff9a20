/**
 * Regenerate sandpool's seccomp profile for container sessions from an engine's default profile:
 *
 *   npx tsx scripts/seccomp-profile.ts [base.json]   (default: Podman's /usr/share/containers/seccomp.json)
 *
 * Writes backends/container/seccomp/profile.json (what the container backend applies to every
 * session). The changes are listed in backends/container/seccomp/derive.ts; test/container/
 * seccomp-profile.test.ts checks the shipped file is this derivation of the host's base.
 */

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { deriveSeccompProfile, type SeccompProfile } from '../backends/container/seccomp/derive.js';

const base = process.argv[2] ?? '/usr/share/containers/seccomp.json';
const out = join(import.meta.dirname, '..', 'backends', 'container', 'seccomp', 'profile.json');
const profile = deriveSeccompProfile(JSON.parse(readFileSync(base, 'utf8')) as SeccompProfile);
writeFileSync(out, `${JSON.stringify(profile, null, 2)}\n`);
console.log(`wrote ${out} from ${base}: ${profile.syscalls.length} rules`);
