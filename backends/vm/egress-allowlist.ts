/**
 * Per-session egress allow-lists (`network.allow`) for EgressEnabled VMs. The shared chain of
 * egress-firewall.ts confines every session QEMU (by the uid range); a session whose pool has an
 * allow-list additionally gets its own chain, matched by its own uid and hooked into OUTPUT right
 * AFTER the range rule, so host/private/link-local destinations are still rejected first:
 *
 *   OUTPUT -m owner --uid-owner <uid> -j SANDPOOL-VM-S<uid>
 *   SANDPOOL-VM-S<uid>: each allowed CIDR → ACCEPT; DNS to the host's resolvers → RETURN
 *                       (so names still resolve); everything else → REJECT.
 *
 * DNS names are resolved (IPv4) once when the allow-list is resolved: a snapshot, so names whose
 * addresses change later need new sessions.
 */

import { execFile } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';

import { BackendError, InvalidOptionsError } from '../../src/errors.js';
import { EGRESS_CHAIN, hostResolvers } from './egress-firewall.js';
import { SESSION_UID_FIRST, SESSION_UID_LAST } from './run-dir.js';

const execFileAsync = promisify(execFile);

const CHAIN_PREFIX = 'SANDPOOL-VM-S';
const IPV4_CIDR = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})(?:\/(0|[1-9]\d?))?$/;
const HOSTNAME = /^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\.?$/;

export const allowChainOf = (uid: number): string => `${CHAIN_PREFIX}${uid}`;

/**
 * The allow-list as IPv4 CIDRs: addresses and CIDRs validated strictly, DNS names resolved now.
 * Anything else (IPv6, malformed octets or prefixes, host bits set) is an InvalidOptionsError naming it.
 */
export async function resolveAllowList(allow: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const entry of allow) {
    const m = IPV4_CIDR.exec(entry);
    if (m !== null) {
      const octets = [m[1], m[2], m[3], m[4]].map(Number);
      const prefix = m[5] === undefined ? 32 : Number(m[5]);
      if (octets.some((o) => o > 255) || prefix > 32)
        throw new InvalidOptionsError(`network.allow: invalid IPv4 address or CIDR "${entry}"`);
      const value = octets.reduce((acc, o) => acc * 256 + o, 0);
      if (prefix < 32 && value % 2 ** (32 - prefix) !== 0) {
        throw new InvalidOptionsError(`network.allow: "${entry}" has host bits set beyond its /${prefix} prefix`);
      }
      out.push(`${octets.join('.')}/${prefix}`);
    } else if (/^[\d./]+$/.test(entry) || !HOSTNAME.test(entry)) {
      throw new InvalidOptionsError(
        `network.allow: "${entry}" is neither an IPv4 address/CIDR nor a DNS name (IPv6 is not supported)`,
      );
    } else {
      let addresses: { address: string }[];
      try {
        addresses = await lookup(entry, { all: true, family: 4 });
      } catch (error) {
        throw new InvalidOptionsError(`network.allow: cannot resolve "${entry}": ${(error as Error).message}`, { cause: error });
      }
      out.push(...addresses.map((a) => `${a.address}/32`));
    }
  }
  return [...new Set(out)];
}

async function iptables(args: string[]): Promise<string | undefined> {
  try {
    return (await execFileAsync('iptables', ['-w', '5', ...args])).stdout;
  } catch {
    return undefined;
  }
}

/** The session's OUTPUT rule, without the action (-A/-I/-C/-D). */
const hookRule = (uid: number): string[] => ['-m', 'owner', '--uid-owner', String(uid), '-j', allowChainOf(uid)];

/** Install the session's chain and hook; throws (after undoing what it did) when it cannot. */
export async function installAllowList(uid: number, cidrs: readonly string[]): Promise<void> {
  const chain = allowChainOf(uid);
  try {
    await removeAllowList(uid);
    if ((await iptables(['-N', chain])) === undefined) throw new Error(`cannot create the iptables chain ${chain}`);
    const rules: string[][] = cidrs.map((cidr) => ['-d', cidr, '-j', 'ACCEPT']);
    for (const resolver of hostResolvers()) {
      for (const proto of ['udp', 'tcp']) rules.push(['-p', proto, '-d', resolver, '--dport', '53', '-j', 'RETURN']);
    }
    rules.push(['-j', 'REJECT']);
    for (const rule of rules) {
      if ((await iptables(['-A', chain, ...rule])) === undefined)
        throw new Error(`cannot add iptables rule ${rule.join(' ')} to ${chain}`);
    }
    // Right after the shared range rule, so its host/private rejects always come first.
    const lines = ((await iptables(['-S', 'OUTPUT'])) ?? '').split('\n').filter((l) => l.startsWith('-A OUTPUT'));
    const rangeRule = lines.findIndex(
      (l) => l.includes(`-j ${EGRESS_CHAIN}`) && l.includes(`${SESSION_UID_FIRST}-${SESSION_UID_LAST}`),
    );
    if (rangeRule < 0) throw new Error(`the shared chain ${EGRESS_CHAIN} is not hooked into OUTPUT`);
    if ((await iptables(['-I', 'OUTPUT', String(rangeRule + 2), ...hookRule(uid)])) === undefined) {
      throw new Error(`cannot hook ${chain} into the OUTPUT chain`);
    }
  } catch (error) {
    await removeAllowList(uid);
    throw new BackendError(`cannot enforce network.allow for the VM session: ${(error as Error).message}`, { cause: error });
  }
}

/** Remove the session's hook and chain; idempotent (missing pieces are fine). */
export async function removeAllowList(uid: number): Promise<void> {
  const chain = allowChainOf(uid);
  // A rule may exist more than once after a crash between insert and bookkeeping: delete until gone.
  for (let i = 0; i < 16 && (await iptables(['-D', 'OUTPUT', ...hookRule(uid)])) !== undefined; i += 1);
  if ((await iptables(['-F', chain])) !== undefined) await iptables(['-X', chain]);
}

/** Uids that currently own a process (a session QEMU that is still running). */
function uidsWithProcesses(): Set<number> {
  const uids = new Set<number>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return uids;
  }
  for (const pid of pids) {
    try {
      const line = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (line?.[1] !== undefined) uids.add(Number(line[1]));
    } catch {
      // Exited meanwhile.
    }
  }
  return uids;
}

/**
 * Remove per-session chains whose session is gone: no process runs as its uid and `live` (uids of
 * session directories that still exist) does not name it. Returns the removed uids.
 */
export async function reapStaleAllowLists(live: ReadonlySet<number>): Promise<number[]> {
  const listing = await iptables(['-S']);
  if (listing === undefined) return [];
  const uids = [...listing.matchAll(new RegExp(`^-N ${CHAIN_PREFIX}(\\d+)$`, 'gm'))].map((m) => Number(m[1]));
  if (uids.length === 0) return [];
  const running = uidsWithProcesses();
  const stale = uids.filter((uid) => uid >= SESSION_UID_FIRST && uid <= SESSION_UID_LAST && !live.has(uid) && !running.has(uid));
  for (const uid of stale) await removeAllowList(uid);
  return stale;
}
