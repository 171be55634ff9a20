/**
 * sandpool's seccomp profile (backends/container/seccomp/profile.json): the shipped file is the
 * derivation of this host's engine default, and its rules say what docs/SECURITY.md says. The
 * attacks themselves run in test/container/attacks.test.ts against real containers.
 */

import { existsSync, readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { deriveSeccompProfile, SANDPOOL_SECCOMP_PROFILE, type SeccompProfile } from '../../backends/container/seccomp/index.js';
import { NAMESPACE_FLAGS } from '../../backends/container/seccomp/derive.js';

const PODMAN_DEFAULT = '/usr/share/containers/seccomp.json';
const NS_MASK = Object.values(NAMESPACE_FLAGS).reduce((a, b) => a | b, 0);

const rulesFor = (profile: SeccompProfile, name: string) => profile.syscalls.filter((r) => r.names.includes(name));

describe('sandpool seccomp profile', () => {
  it.skipIf(!existsSync(PODMAN_DEFAULT))(
    'is the derivation of the engine default on this host (regenerate: npx tsx scripts/seccomp-profile.ts)',
    () => {
      const base = JSON.parse(readFileSync(PODMAN_DEFAULT, 'utf8')) as SeccompProfile;
      expect(SANDPOOL_SECCOMP_PROFILE).toEqual(deriveSeccompProfile(base));
      // Everything else the engine allows stays allowed (nothing unrelated was dropped).
      const allowed = (p: SeccompProfile) =>
        new Set(
          p.syscalls
            .filter((r) => r.action === 'SCMP_ACT_ALLOW' && r.args === undefined && r.includes === undefined)
            .flatMap((r) => r.names),
        );
      const replaced = new Set([
        'clone',
        'clone3',
        'unshare',
        'setns',
        'socket',
        'socketcall',
        'io_uring_setup',
        'io_uring_enter',
        'io_uring_register',
      ]);
      for (const name of allowed(base))
        if (!replaced.has(name)) expect(allowed(SANDPOOL_SECCOMP_PROFILE).has(name), name).toBe(true);
    },
  );

  it('refuses new namespaces: unshare and setns always, clone with any namespace flag, clone3 as ENOSYS', () => {
    const p = SANDPOOL_SECCOMP_PROFILE;
    expect(p.defaultAction).not.toBe('SCMP_ACT_ALLOW');
    for (const name of ['unshare', 'setns']) {
      expect(rulesFor(p, name), name).toEqual([expect.objectContaining({ action: 'SCMP_ACT_ERRNO', errnoRet: 1 })]);
    }
    expect(rulesFor(p, 'clone3')).toEqual([expect.objectContaining({ action: 'SCMP_ACT_ERRNO', errnoRet: 38 })]);
    const clone = rulesFor(p, 'clone');
    const allows = clone.filter((r) => r.action === 'SCMP_ACT_ALLOW');
    // Allowed only with every namespace bit clear (index 0; index 1 on s390).
    expect(allows.map((r) => r.args)).toEqual([
      [{ index: 0, value: NS_MASK, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
      [{ index: 1, value: NS_MASK, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
    ]);
    expect(allows.every((r) => r.includes?.['caps'] === undefined && r.excludes?.['caps'] === undefined)).toBe(true);
    for (const flag of Object.values(NAMESPACE_FLAGS)) {
      expect(
        clone.some(
          (r) => r.action === 'SCMP_ACT_ERRNO' && r.errnoRet === 1 && r.args?.[0]?.value === flag && r.args[0].valueTwo === flag,
        ),
      ).toBe(true);
    }
    expect(rulesFor(p, 'socketcall')).toEqual([expect.objectContaining({ action: 'SCMP_ACT_ERRNO', errnoRet: 1 })]);
  });

  it('allows only AF_UNIX, inet stream/datagram and NETLINK_ROUTE sockets', () => {
    const allows = rulesFor(SANDPOOL_SECCOMP_PROFILE, 'socket').filter((r) => r.action === 'SCMP_ACT_ALLOW');
    const described = allows.map((r) => (r.args ?? []).map((a) => `${a.index}:${a.op}:${a.value}:${a.valueTwo ?? ''}`).join(' '));
    expect(described.sort()).toEqual(
      [
        '0:SCMP_CMP_EQ:1:', // AF_UNIX
        '0:SCMP_CMP_EQ:2: 1:SCMP_CMP_MASKED_EQ:15:1', // AF_INET stream
        '0:SCMP_CMP_EQ:2: 1:SCMP_CMP_MASKED_EQ:15:2', // AF_INET datagram
        '0:SCMP_CMP_EQ:10: 1:SCMP_CMP_MASKED_EQ:15:1', // AF_INET6 stream
        '0:SCMP_CMP_EQ:10: 1:SCMP_CMP_MASKED_EQ:15:2', // AF_INET6 datagram
        '0:SCMP_CMP_EQ:16: 2:SCMP_CMP_EQ:0:', // AF_NETLINK NETLINK_ROUTE
      ].sort(),
    );
  });

  it('derives the same rules from a Docker-style default (caps-gated clone, io_uring allowed)', () => {
    const docker: SeccompProfile = {
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 1,
      syscalls: [
        { names: ['read', 'write', 'io_uring_setup', 'socketcall'], action: 'SCMP_ACT_ALLOW' },
        { names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 40, op: 'SCMP_CMP_NE' }] },
        {
          names: ['bpf', 'clone', 'clone3', 'mount', 'setns', 'unshare'],
          action: 'SCMP_ACT_ALLOW',
          includes: { caps: ['CAP_SYS_ADMIN'] },
        },
        { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 2114060288, op: 'SCMP_CMP_MASKED_EQ' }] },
        { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38, excludes: { caps: ['CAP_SYS_ADMIN'] } },
      ],
    };
    const derived = deriveSeccompProfile(docker);
    expect(derived.defaultErrnoRet).toBe(1);
    expect(rulesFor(derived, 'read')[0]?.action).toBe('SCMP_ACT_ALLOW');
    expect(rulesFor(derived, 'mount')[0]?.includes).toEqual({ caps: ['CAP_SYS_ADMIN'] });
    for (const name of ['clone', 'clone3', 'setns', 'unshare', 'socket', 'socketcall', 'io_uring_setup']) {
      expect(rulesFor(derived, name), name).toEqual(rulesFor(SANDPOOL_SECCOMP_PROFILE, name));
    }
    expect(() => deriveSeccompProfile({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [] })).toThrow(/allows every system call/);
  });
});

describe('the seccompProfile option', () => {
  it('takes an operator’s own profile file and refuses a file that is not a restrictive profile', async () => {
    const { ContainerBackend } = await import('../../backends/container/index.js');
    const { InvalidOptionsError } = await import('../../src/errors.js');
    if (existsSync(PODMAN_DEFAULT)) expect(() => new ContainerBackend({ seccompProfile: PODMAN_DEFAULT })).not.toThrow();
    expect(() => new ContainerBackend({ seccompProfile: '/nonexistent/profile.json' })).toThrow(InvalidOptionsError);
    expect(() => new ContainerBackend({ seccompProfile: '/etc/hostname' })).toThrow(/cannot read .* as JSON/);
  });
});
