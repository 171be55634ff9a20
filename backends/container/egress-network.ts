/**
 * Per-pool network for EgressEnabled pools: a bridge network `sandpool-egress-<pool>`, labelled
 * with the process that created it (so a crashed owner's network and firewall chain are reaped by
 * the next prepare(), like its containers), plus host
 * firewall rules (iptables, when available and we are root) so sessions on it can reach the
 * outside but neither the host's own services (INPUT from the bridge is dropped, except DNS to
 * the gateway) nor each other (bridge-to-bridge forwarding is dropped); with `network.allow`, only
 * the listed networks. Podman 4.3 with CNI has no per-network isolation option that does this,
 * hence the rules. Gaps: docs/CONTAINER.md.
 */

import { execFile } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

import type Docker from 'dockerode';

import { BackendError } from '../../src/errors.js';
import { LABEL, ownerIsDead, ownerLabels } from './labels.js';

const run = promisify(execFile);

export function egressNetworkName(poolName: string): string {
  return `sandpool-egress-${poolName}`.slice(0, 120);
}

interface NetworkInspect {
  Id?: string;
  Name?: string;
  Options?: Record<string, string>;
  network_interface?: string;
  IPAM?: { Config?: { Gateway?: string }[] };
}

/** The host interface of a bridge network, checked to exist; undefined when it cannot be told. */
async function bridgeInterface(network: NetworkInspect): Promise<string | undefined> {
  const exists = (iface: string | undefined): string | undefined =>
    iface !== undefined && iface !== '' && existsSync(`/sys/class/net/${iface}`) ? iface : undefined;
  const fromOptions = exists(network.Options?.['com.docker.network.bridge.name'] ?? network.network_interface);
  if (fromOptions !== undefined) return fromOptions;
  // Docker names the bridge of a user-defined network `br-` and the first 12 digits of its id.
  const docker = exists(network.Id === undefined ? undefined : `br-${network.Id.slice(0, 12)}`);
  if (docker !== undefined) return docker;
  // Podman's compat inspect may omit it: ask podman itself.
  if (network.Name === undefined) return undefined;
  try {
    const { stdout } = await run('podman', ['network', 'inspect', network.Name, '--format', '{{.NetworkInterface}}']);
    return exists(stdout.trim());
  } catch {
    return undefined;
  }
}

async function iptables(...args: string[]): Promise<void> {
  await run('iptables', ['-w', ...args]);
}

async function ensureRule(rule: string[]): Promise<void> {
  try {
    await iptables('-C', ...rule);
  } catch {
    await iptables('-I', ...rule);
  }
}

const IPV4_CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(\/(\d{1,2}))?$/;
const HOSTNAME = /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

/**
 * The allow-list as IPv4 CIDRs: CIDRs and addresses as given, DNS names resolved now (a
 * snapshot: names whose addresses change later need a pool restart). Rejects anything else.
 */
export async function resolveAllowList(allow: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const entry of allow) {
    const m = IPV4_CIDR.exec(entry);
    if (m !== null) {
      const octetsOk = [m[1], m[2], m[3], m[4]].every((o) => Number(o) <= 255);
      const prefix = m[6] === undefined ? 32 : Number(m[6]);
      if (!octetsOk || prefix > 32) throw new BackendError(`network.allow: invalid IPv4 address or CIDR "${entry}"`);
      out.push(`${m[1]}.${m[2]}.${m[3]}.${m[4]}/${prefix}`);
    } else if (HOSTNAME.test(entry)) {
      let addresses: { address: string }[];
      try {
        addresses = await lookup(entry, { all: true, family: 4 });
      } catch (error) {
        throw new BackendError(`network.allow: cannot resolve "${entry}": ${(error as Error).message}`, { cause: error });
      }
      out.push(...addresses.map((a) => `${a.address}/32`));
    } else {
      throw new BackendError(`network.allow: "${entry}" is neither an IPv4 address/CIDR nor a DNS name (IPv6 is not supported)`);
    }
  }
  return [...new Set(out)];
}

const chainOf = (iface: string) => `SANDPOOL-CT-${iface}`;

/**
 * Rules for one bridge. INPUT: nothing from the bridge reaches the host except DNS to the
 * gateway. FORWARD: traffic from the bridge goes through a chain of ours that drops
 * session-to-session traffic and link-local (cloud metadata) addresses, then either lets
 * everything out or, with an allow-list, only the listed networks.
 */
async function isolate(iface: string, gateway: string | undefined, allowed: readonly string[] | undefined): Promise<void> {
  if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(iface)) throw new Error(`unexpected bridge name ${iface}`);
  const chain = chainOf(iface);
  await iptables('-N', chain).catch(() => {});
  await iptables('-F', chain);
  await iptables('-A', chain, '-o', iface, '-j', 'DROP');
  await iptables('-A', chain, '-d', '169.254.0.0/16', '-j', 'DROP');
  if (allowed === undefined) {
    await iptables('-A', chain, '-j', 'RETURN');
  } else {
    for (const cidr of allowed) await iptables('-A', chain, '-d', cidr, '-j', 'RETURN');
    await iptables('-A', chain, '-j', 'DROP');
  }
  await ensureRule(['FORWARD', '-i', iface, '-j', chain]);
  // -I puts each rule on top: the DNS exception goes in after the drop, so it is checked first.
  await ensureRule(['INPUT', '-i', iface, '-j', 'DROP']);
  if (gateway !== undefined)
    await ensureRule(['INPUT', '-i', iface, '-d', gateway, '-p', 'udp', '--dport', '53', '-j', 'ACCEPT']);
}

async function unisolate(iface: string, gateway: string | undefined): Promise<void> {
  const chain = chainOf(iface);
  const rules = [
    ['FORWARD', '-i', iface, '-j', chain],
    ['INPUT', '-i', iface, '-j', 'DROP'],
  ];
  if (gateway !== undefined) rules.push(['INPUT', '-i', iface, '-d', gateway, '-p', 'udp', '--dport', '53', '-j', 'ACCEPT']);
  for (const rule of rules) await iptables('-D', ...rule).catch(() => {});
  await iptables('-F', chain).catch(() => {});
  await iptables('-X', chain).catch(() => {});
}

/**
 * Remove the pool's network when no container uses it any more, with its firewall rules.
 * A network still in use (another process's sessions) is left alone.
 */
export async function removeEgressNetwork(docker: Docker, name: string): Promise<void> {
  let info: NetworkInspect;
  try {
    info = (await docker.getNetwork(name).inspect()) as NetworkInspect;
  } catch {
    return;
  }
  const iface = await bridgeInterface(info);
  try {
    await docker.getNetwork(name).remove();
  } catch {
    return; // in use, or already gone
  }
  if (iface === undefined || process.getuid?.() !== 0) return;
  await unisolate(iface, info.IPAM?.Config?.[0]?.Gateway);
}

/** What the container that brings a network's bridge up is made of. */
export interface BridgeStarter {
  /** An image present on the engine (the pool's own); its program never needs to run. */
  readonly image: string;
  /** `sandpool.managed` value: the reaper of this backend removes the container after a crash. */
  readonly backendName: string;
}

/**
 * Join a container to the network and remove it. The engine sets the network up (bridge included)
 * before it executes anything, so `/bin/true` missing from a custom image does not matter; the
 * bridge stays until the network is removed.
 */
async function startBridge(docker: Docker, network: string, starter: BridgeStarter): Promise<void> {
  let container: Docker.Container | undefined;
  try {
    container = await docker.createContainer({
      Image: starter.image,
      Entrypoint: ['/bin/true'],
      Cmd: [],
      Labels: { [LABEL.managed]: starter.backendName, [LABEL.kind]: 'bridge-starter', ...ownerLabels() },
      HostConfig: { NetworkMode: network, ReadonlyRootfs: true, CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'] },
    });
    await container.start().catch(() => undefined); // the network is up even when the program cannot run
  } catch (error) {
    throw new BackendError(`cannot bring up the bridge of network ${network}: ${(error as Error).message}`, { cause: error });
  } finally {
    await container?.remove({ force: true }).catch(() => undefined);
  }
}

/** Create (or reuse) the pool's egress network and its isolation rules; returns its name. */
export async function ensureEgressNetwork(
  docker: Docker,
  poolName: string,
  allow: readonly string[],
  log: (m: string) => void,
  bridgeStarter: BridgeStarter,
): Promise<string> {
  const allowed = allow.length === 0 ? undefined : await resolveAllowList(allow);
  const name = egressNetworkName(poolName);
  let info: NetworkInspect;
  try {
    info = (await docker.getNetwork(name).inspect()) as NetworkInspect;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode !== 404) {
      throw new BackendError(`cannot inspect network ${name}: ${(error as Error).message}`, { cause: error });
    }
    try {
      await docker.createNetwork({
        Name: name,
        Driver: 'bridge',
        Internal: false,
        Labels: { [LABEL.managed]: 'container', [LABEL.pool]: poolName, ...ownerLabels() },
      });
    } catch (createError) {
      if ((createError as { statusCode?: number }).statusCode !== 409) {
        throw new BackendError(`cannot create network ${name}: ${(createError as Error).message}`, { cause: createError });
      }
    }
    info = (await docker.getNetwork(name).inspect()) as NetworkInspect;
    log(`created egress network ${name}`);
  }
  let iface = await bridgeInterface(info);
  if (iface === undefined) {
    // Podman makes a network's bridge when the first container joins it; the rules must be in
    // place before any session does, so one short-lived container brings the bridge up now.
    await startBridge(docker, name, bridgeStarter);
    iface = await bridgeInterface(info);
  }
  const hasIptables = existsSync('/usr/sbin/iptables') || existsSync('/sbin/iptables');
  // Where the rules could be installed but the bridge cannot be found, refuse rather than let
  // sessions reach the host's services unrestricted.
  if (iface === undefined && hasIptables && process.getuid?.() === 0) {
    throw new BackendError(`cannot find the host bridge of network ${name}, so its sessions cannot be isolated; refusing egress`);
  }
  if (iface === undefined || !hasIptables || process.getuid?.() !== 0) {
    if (allowed !== undefined) {
      throw new BackendError(
        `network.allow needs iptables and root to be enforced (bridge ${iface ?? 'unknown'}); refusing to run unrestricted`,
      );
    }
    log(
      `egress network ${name}: no host isolation rules (bridge ${iface ?? 'unknown'}, iptables ${hasIptables}, root ${process.getuid?.() === 0})`,
    );
    return name;
  }
  try {
    await isolate(iface, info.IPAM?.Config?.[0]?.Gateway, allowed);
  } catch (error) {
    throw new BackendError(`cannot install isolation rules for network ${name}: ${(error as Error).message}`, { cause: error });
  }
  return name;
}

/**
 * After a crash: remove the egress networks whose owner process is provably dead (with their
 * firewall rules), then every SANDPOOL-CT chain whose bridge no longer exists on the host (a
 * network removed by hand or by an engine restart): such rules match no traffic, and a chain is
 * only ever made for a bridge that exists, so nothing live is touched — not another process's
 * networks, not those of the other engine on the same host.
 */
export async function reapEgressLeftovers(docker: Docker): Promise<number> {
  const networks = (await docker.listNetworks({ filters: { label: [`${LABEL.managed}=container`] } })) as {
    Name: string;
    Labels?: Record<string, string>;
  }[];
  let removed = 0;
  for (const network of networks) {
    if (!ownerIsDead(network.Labels)) continue;
    await removeEgressNetwork(docker, network.Name);
    removed++;
  }
  if (process.getuid?.() !== 0 || !(existsSync('/usr/sbin/iptables') || existsSync('/sbin/iptables'))) return removed;
  const { stdout } = await run('iptables', ['-w', '-S']).catch(() => ({ stdout: '' }));
  for (const match of stdout.matchAll(/^-N SANDPOOL-CT-(\S+)$/gm)) {
    const iface = match[1]!;
    if (existsSync(`/sys/class/net/${iface}`)) continue;
    await unisolate(iface, undefined);
    // The DNS exception names the gateway: remove it by its listing.
    for (const line of stdout.split('\n')) {
      if (/^-A (INPUT|FORWARD) /.test(line) && line.includes(` -i ${iface} `)) {
        await iptables('-D', ...line.slice(3).split(' ')).catch(() => {});
      }
    }
    removed++;
  }
  return removed;
}
