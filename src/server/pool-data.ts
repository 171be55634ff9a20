/**
 * Where the server's defined pools keep their paused sessions and snapshots:
 * `<dataDir>/pool-data/<pool>/` (the pool's `dataDirectory`, 0700). Deleting a pool removes its
 * directory; a directory whose pool no longer exists (the server was killed between the two) is
 * removed at the next start, before the pools are restored.
 */

import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

import type { Logger } from './logging.js';

export function poolDataDir(dataDir: string, pool: string): string {
  return join(dataDir, 'pool-data', pool);
}

/** Remove the data of every pool not in `defined`. */
export async function removeOrphanedPoolData(dataDir: string, defined: ReadonlySet<string>, log: Logger): Promise<void> {
  let names: string[];
  try {
    names = await readdir(join(dataDir, 'pool-data'));
  } catch {
    return;
  }
  for (const name of names) {
    if (defined.has(name)) continue;
    await rm(join(dataDir, 'pool-data', name), { recursive: true, force: true });
    log({ level: 'info', msg: 'removed the paused sessions of a deleted pool', pool: name });
  }
}
