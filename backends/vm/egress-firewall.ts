/**
 * Host firewall for EgressEnabled VMs. QEMU's user-mode networking (slirp) makes the guest's
 * connections from the QEMU process itself, so without this a guest reaches the host's own
 * services (10.0.2.2 is the host's loopback, and every host address is local to QEMU), private
 * networks and the cloud metadata service. Every session QEMU runs as a uid in one reserved range
 * (run-dir.ts sessionUid), so one iptables chain, matched by owner, confines all of them:
 *
 *   OUTPUT -m owner --uid-owner <range> -j SANDPOOL-VM-EGRESS
 *   SANDPOOL-VM-EGRESS: DNS to the host's resolvers → RETURN; local, private, link-local,
 *                       CGNAT and multicast destinations → REJECT; everything else → RETURN.
 *
 * The rules only ever match QEMU processes of this backend, are installed idempotently, and are left
 * in place (they are inert without such processes). Linux + root + iptables only; elsewhere
 * `ensureEgressFirewall` reports why it could not confine egress and the backend refuses
 * EgressEnabled sessions unless told to allow unconfined egress.
 */

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { promisify } from 'node:util';

import { SESSION_UID_FIRST, SESSION_UID_LAST } from './run-dir.js';

const execFileAsync = promisify(execFile);

export const EGRESS_CHAIN = 'SANDPOOL-VM-EGRESS';

/** Destinations no session may reach (besides every address of the host itself). */
export const BLOCKED_NETWORKS = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '224.0.0.0/3',
] as const;

export function hostResolvers(): string[] {
  try {
    return readFileSync('/etc/resolv.conf', 'utf8')
      .split('\n')
      .map((line) => /^\s*nameserver\s+(\S+)/.exec(line)?.[1])
      .filter((ip): ip is string => ip !== undefined && isIPv4(ip));
  } catch {
    return [];
  }
}

async function iptables(args: string[]): Promise<boolean> {
  try {
    await execFileAsync('iptables', ['-w', '5', ...args]);
    return true;
  } catch {
    return false;
  }
}

let installed: Promise<void> | undefined;

/** Install (or refresh) the chain; resolves when egress of session QEMUs is confined. */
export async function ensureEgressFirewall(): Promise<void> {
  installed ??= install().catch((error: unknown) => {
    installed = undefined;
    throw error;
  });
  await installed;
}

async function install(): Promise<void> {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) {
    throw new Error('confining VM egress needs Linux and root (iptables owner match)');
  }
  const owner = ['-m', 'owner', '--uid-owner', `${SESSION_UID_FIRST}-${SESSION_UID_LAST}`];
  if (!(await iptables(['-L', EGRESS_CHAIN, '-n'])) && !(await iptables(['-N', EGRESS_CHAIN]))) {
    throw new Error(`cannot create the iptables chain ${EGRESS_CHAIN} (is iptables installed?)`);
  }
  // Rebuild the chain's contents: the resolvers may have changed since the last install.
  if (!(await iptables(['-F', EGRESS_CHAIN]))) throw new Error(`cannot flush ${EGRESS_CHAIN}`);
  const rules: string[][] = [];
  for (const resolver of hostResolvers()) {
    for (const proto of ['udp', 'tcp']) rules.push(['-p', proto, '-d', resolver, '--dport', '53', '-j', 'RETURN']);
  }
  rules.push(['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'REJECT']);
  for (const network of BLOCKED_NETWORKS) rules.push(['-d', network, '-j', 'REJECT']);
  for (const rule of rules) {
    if (!(await iptables(['-A', EGRESS_CHAIN, ...rule]))) throw new Error(`cannot add iptables rule ${rule.join(' ')}`);
  }
  if (
    !(await iptables(['-C', 'OUTPUT', ...owner, '-j', EGRESS_CHAIN])) &&
    !(await iptables(['-I', 'OUTPUT', '1', ...owner, '-j', EGRESS_CHAIN]))
  ) {
    throw new Error(`cannot hook ${EGRESS_CHAIN} into the OUTPUT chain`);
  }
}
