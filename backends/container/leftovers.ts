/**
 * Removal of what a crashed owner left behind: containers whose owner labels prove the owner dead
 * (see labels.ts), and per-owner host directories under the run directory named `<pid>.<start>`
 * whose process is gone. Live owners' and foreign resources are never touched.
 */

import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import type Docker from 'dockerode';

import { reapEgressLeftovers } from './egress-network.js';
import { LABEL, ownerIsDead, processStartTime } from './labels.js';

export interface ReapResult {
  readonly containers: number;
  readonly directories: number;
  /** Egress networks and firewall chains of dead owners. */
  readonly networks: number;
}

/** Remove containers of dead owners (all pools: a dead owner's sessions are nobody's). */
export async function reapDeadOwners(docker: Docker, backendName: string, sessionsDir: string): Promise<ReapResult> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL.managed}=${backendName}`] } });
  let containers = 0;
  for (const info of list) {
    if (!ownerIsDead(info.Labels)) continue;
    try {
      await docker.getContainer(info.Id).remove({ force: true, v: true });
      containers++;
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404) throw error;
    }
  }
  let directories = 0;
  let entries: string[] = [];
  try {
    entries = readdirSync(sessionsDir);
  } catch {
    // no directory yet: nothing to reap
  }
  for (const name of entries) {
    const match = /^(\d+)\.(\d+)$/.exec(name);
    if (match === null) continue;
    const alive = processStartTime(Number(match[1])) === match[2];
    if (alive) continue;
    rmSync(join(sessionsDir, name), { recursive: true, force: true });
    directories++;
  }
  // After the containers: a network is removable once nothing is attached to it.
  const networks = await reapEgressLeftovers(docker);
  return { containers, directories, networks };
}
