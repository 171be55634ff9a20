/**
 * Per-pool network for EgressEnabled pools: a bridge network `sandpool-egress-<pool>`, plus host
 * firewall rules (iptables, when available and we are root) so sessions on it can reach the
 * outside but neither the host's own services (INPUT from the bridge is dropped, except DNS to
 * the gateway) nor each other (bridge-to-bridge forwarding is dropped). Podman 4.3 with CNI has
 * no per-network isolation option that does this, hence the rules. Gaps: docs/CONTAINER.md.
 */

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

import type Docker from 'dockerode';

import { BackendError } from '../../src/errors.js';
import { LABEL } from './labels.js';

const run = promisify(execFile);

export function egressNetworkName(poolName: string): string {
  return `sandpool-egress-${poolName}`.slice(0, 120);
}

interface NetworkInspect {
  Name?: string;
  Options?: Record<string, string>;
  network_interface?: string;
  IPAM?: { Config?: { Gateway?: string }[] };
}

async function bridgeInterface(network: NetworkInspect): Promise<string | undefined> {
  const fromOptions = network.Options?.['com.docker.network.bridge.name'] ?? network.network_interface;
  if (fromOptions !== undefined && fromOptions !== '') return fromOptions;
  // Podman's compat inspect may omit it: ask podman itself.
  if (network.Name === undefined) return undefined;
  try {
    const { stdout } = await run('podman', ['network', 'inspect', network.Name, '--format', '{{.NetworkInterface}}']);
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

async function ensureRule(table: string[], rule: string[]): Promise<void> {
  try {
    await run('iptables', ['-w', ...table, '-C', ...rule]);
  } catch {
    await run('iptables', ['-w', ...table, '-I', ...rule]);
  }
}

/** The isolation rules of one bridge, in insertion order (-I puts each on top, so the last wins first). */
function isolationRules(iface: string, gateway: string | undefined): string[][] {
  const rules = [['INPUT', '-i', iface, '-j', 'DROP']];
  // DNS to the gateway (podman's dnsname resolver) stays reachable.
  if (gateway !== undefined) rules.push(['INPUT', '-i', iface, '-d', gateway, '-p', 'udp', '--dport', '53', '-j', 'ACCEPT']);
  rules.push(['FORWARD', '-i', iface, '-o', iface, '-j', 'DROP'], ['FORWARD', '-i', iface, '-d', '169.254.0.0/16', '-j', 'DROP']);
  return rules;
}

async function isolate(iface: string, gateway: string | undefined): Promise<void> {
  if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(iface)) throw new Error(`unexpected bridge name ${iface}`);
  for (const rule of isolationRules(iface, gateway)) await ensureRule([], rule);
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
  for (const rule of isolationRules(iface, info.IPAM?.Config?.[0]?.Gateway)) {
    await run('iptables', ['-w', '-D', ...rule]).catch(() => {});
  }
}

/** Create (or reuse) the pool's egress network and its isolation rules; returns its name. */
export async function ensureEgressNetwork(docker: Docker, poolName: string, log: (m: string) => void): Promise<string> {
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
        Labels: { [LABEL.managed]: 'container', [LABEL.pool]: poolName },
      });
    } catch (createError) {
      if ((createError as { statusCode?: number }).statusCode !== 409) {
        throw new BackendError(`cannot create network ${name}: ${(createError as Error).message}`, { cause: createError });
      }
    }
    info = (await docker.getNetwork(name).inspect()) as NetworkInspect;
    log(`created egress network ${name}`);
  }
  const iface = await bridgeInterface(info);
  const hasIptables = existsSync('/usr/sbin/iptables') || existsSync('/sbin/iptables');
  if (iface === undefined || !hasIptables || process.getuid?.() !== 0) {
    log(`egress network ${name}: no host isolation rules (bridge ${iface ?? 'unknown'}, iptables ${hasIptables}, root ${process.getuid?.() === 0})`);
    return name;
  }
  try {
    await isolate(iface, info.IPAM?.Config?.[0]?.Gateway);
  } catch (error) {
    throw new BackendError(`cannot install isolation rules for network ${name}: ${(error as Error).message}`, { cause: error });
  }
  return name;
}
