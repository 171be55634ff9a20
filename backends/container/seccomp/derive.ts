/**
 * sandpool's seccomp profile for container sessions, derived from a container engine's default
 * profile (Podman's /usr/share/containers/seccomp.json, or Docker's default.json: same format).
 *
 * Both engines allow `unshare`, `clone` and `clone3` to an unprivileged process (Podman always;
 * Docker only refuses them without CAP_SYS_ADMIN). A session process can then create a user
 * namespace and hold every capability inside it: nf_tables netlink, raw and packet sockets,
 * mounts — the kernel surfaces most container escapes start from. The derived profile keeps the
 * base's allow-list and replaces the rules of a few system calls with sandpool's own:
 *
 * - `clone`: allowed only without namespace flags; each namespace flag gives EPERM (Docker's rule,
 *   made unconditional: no capability re-enables it).
 * - `clone3`: ENOSYS. Its flags live in a struct seccomp cannot read; libc falls back to `clone`
 *   on ENOSYS (what Docker does too).
 * - `unshare`, `setns`: EPERM.
 * - `socket`: AF_UNIX; AF_INET/AF_INET6 stream and datagram; AF_NETLINK NETLINK_ROUTE only (libc's
 *   getifaddrs, if_nameindex and getaddrinfo need it). Everything else gives EPERM: raw and packet
 *   sockets, other netlink protocols (nf_tables, audit, uevent, xfrm, generic), AF_ALG, AF_VSOCK,
 *   AF_KEY, AF_XDP, Bluetooth, CAN, TIPC, RDS and every other family.
 * - `socketcall` (the 32-bit multiplexer, whose arguments sit behind a pointer seccomp cannot
 *   read, so it would bypass the socket rules): EPERM. 32-bit libc uses the direct calls.
 * - `io_uring_*` (if the base allows them): ENOSYS; a large kernel surface, not needed.
 *
 * Allow rules compare whole 64-bit argument values, so a caller that sets high bits to dodge an
 * EPERM rule falls through to the default action (refused) rather than into an allow rule.
 */

/** One rule of the containers/Docker seccomp JSON format. */
export interface SeccompRule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: SeccompArg[];
  comment?: string;
  includes?: Record<string, unknown>;
  excludes?: Record<string, unknown>;
}

export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

export interface SeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  archMap?: unknown[];
  syscalls: SeccompRule[];
  [key: string]: unknown;
}

export const EPERM = 1;
export const ENOSYS = 38;

/** The namespace flags of clone(2) (Docker's mask 0x7E020000); CLONE_NEWTIME exists only for clone3/unshare. */
export const NAMESPACE_FLAGS = {
  CLONE_NEWNS: 0x00020000,
  CLONE_NEWCGROUP: 0x02000000,
  CLONE_NEWUTS: 0x04000000,
  CLONE_NEWIPC: 0x08000000,
  CLONE_NEWUSER: 0x10000000,
  CLONE_NEWPID: 0x20000000,
  CLONE_NEWNET: 0x40000000,
} as const;
const NAMESPACE_MASK = Object.values(NAMESPACE_FLAGS).reduce((a, b) => a | b, 0);

const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const AF_PACKET = 17;
const NETLINK_ROUTE = 0;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SOCK_TYPE_MASK = 0xf;

/** The system calls whose base rules are replaced by sandpool's. */
export const REPLACED_SYSCALLS = ['clone', 'clone3', 'unshare', 'setns', 'socket', 'socketcall'] as const;
const DROPPED_SYSCALLS = ['io_uring_setup', 'io_uring_enter', 'io_uring_register'];

const eq = (index: number, value: number): SeccompArg => ({ index, value, op: 'SCMP_CMP_EQ' });
const gt = (index: number, value: number): SeccompArg => ({ index, value, op: 'SCMP_CMP_GT' });
const masked = (index: number, mask: number, value: number): SeccompArg => ({
  index,
  value: mask,
  valueTwo: value,
  op: 'SCMP_CMP_MASKED_EQ',
});

const S390 = ['s390', 's390x'];

function cloneRules(): SeccompRule[] {
  const rules: SeccompRule[] = [];
  // s390 passes clone's flags second; everywhere else first.
  for (const [index, arches] of [
    [0, { excludes: { arches: S390 } }],
    [1, { includes: { arches: S390 } }],
  ] as const) {
    rules.push({
      names: ['clone'],
      action: 'SCMP_ACT_ALLOW',
      args: [masked(index, NAMESPACE_MASK, 0)],
      comment: 'sandpool: clone without namespace flags',
      ...arches,
    });
    for (const [name, flag] of Object.entries(NAMESPACE_FLAGS)) {
      rules.push({
        names: ['clone'],
        action: 'SCMP_ACT_ERRNO',
        errnoRet: EPERM,
        args: [masked(index, flag, flag)],
        comment: `sandpool: clone with ${name} is refused`,
        ...arches,
      });
    }
  }
  return rules;
}

function socketRules(): SeccompRule[] {
  const allow = (args: SeccompArg[], comment: string): SeccompRule => ({
    names: ['socket'],
    action: 'SCMP_ACT_ALLOW',
    args,
    comment: `sandpool: ${comment}`,
  });
  const refuse = (args: SeccompArg[], comment: string): SeccompRule => ({
    names: ['socket'],
    action: 'SCMP_ACT_ERRNO',
    errnoRet: EPERM,
    args,
    comment: `sandpool: ${comment} is refused`,
  });
  const rules: SeccompRule[] = [allow([eq(0, AF_UNIX)], 'AF_UNIX')];
  for (const [family, label] of [
    [AF_INET, 'AF_INET'],
    [AF_INET6, 'AF_INET6'],
  ] as const) {
    rules.push(allow([eq(0, family), masked(1, SOCK_TYPE_MASK, SOCK_STREAM)], `${label} stream`));
    rules.push(allow([eq(0, family), masked(1, SOCK_TYPE_MASK, SOCK_DGRAM)], `${label} datagram`));
    // Raw (3), RDM (4), SEQPACKET (5), DCCP (6), PACKET (10): type values 3..15 after the mask.
    for (let type = 3; type <= SOCK_TYPE_MASK; type++) {
      rules.push(refuse([eq(0, family), masked(1, SOCK_TYPE_MASK, type)], `${label} socket type ${type}`));
    }
  }
  rules.push(allow([eq(0, AF_NETLINK), eq(2, NETLINK_ROUTE)], 'AF_NETLINK NETLINK_ROUTE'));
  rules.push(refuse([eq(0, AF_NETLINK), gt(2, NETLINK_ROUTE)], 'AF_NETLINK other than NETLINK_ROUTE'));
  rules.push(refuse([eq(0, AF_PACKET)], 'AF_PACKET'));
  // Every other family: 0, 3-9, 11-15, and everything above AF_PACKET.
  for (const family of [0, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15]) rules.push(refuse([eq(0, family)], `family ${family}`));
  rules.push(refuse([gt(0, AF_PACKET)], 'every family above AF_PACKET'));
  return rules;
}

/** sandpool's rules for the replaced system calls. */
export function sandpoolRules(): SeccompRule[] {
  return [
    ...cloneRules(),
    { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS, comment: 'sandpool: libc falls back to clone' },
    { names: ['unshare', 'setns'], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM, comment: 'sandpool: no new namespaces' },
    {
      names: ['socketcall'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: EPERM,
      comment: 'sandpool: its arguments cannot be filtered',
    },
    { names: DROPPED_SYSCALLS, action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS, comment: 'sandpool: io_uring is not needed' },
    ...socketRules(),
  ];
}

/**
 * The base profile with every rule about the replaced system calls removed (a rule naming several
 * calls keeps the others) and sandpool's rules appended. Pure: the base is not modified.
 */
export function deriveSeccompProfile(base: SeccompProfile): SeccompProfile {
  if (typeof base.defaultAction !== 'string' || !Array.isArray(base.syscalls)) {
    throw new Error('not a seccomp profile: it needs defaultAction and syscalls');
  }
  if (base.defaultAction === 'SCMP_ACT_ALLOW') {
    throw new Error('the base profile allows every system call by default; derive from an allow-list profile');
  }
  const replaced = new Set<string>([...REPLACED_SYSCALLS, ...DROPPED_SYSCALLS]);
  const kept: SeccompRule[] = [];
  for (const rule of base.syscalls) {
    const names = (rule.names ?? []).filter((n) => !replaced.has(n));
    if (names.length > 0) kept.push({ ...rule, names });
  }
  const { defaultAction, defaultErrnoRet, archMap } = base;
  return {
    defaultAction,
    ...(defaultErrnoRet === undefined ? {} : { defaultErrnoRet }),
    ...(archMap === undefined ? {} : { archMap }),
    syscalls: [...kept, ...sandpoolRules()],
  };
}
