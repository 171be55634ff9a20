/**
 * Where paused sessions and named snapshots live on disk: one directory per checkpoint under the
 * pool's data directory, readable by the server's user only.
 *
 *   <dataDirectory>/                 0700
 *     paused/<entry-id>/             0700  a paused session (one per identifier)
 *       manifest.json                0600  written last, atomically: marks the entry complete
 *       …                                  the backend's checkpoint files (0600)
 *     snapshots/<snapshot-id>/       0700  a named snapshot (pool.snapshot), same layout
 *
 * A directory without a manifest is a checkpoint that never finished (a crash mid-pause): it is
 * removed on the next scan. A manifest that does not parse makes its entry unusable, never
 * another: the scan reports it and removes it. Deleting an entry removes its directory.
 */

import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { z } from 'zod';

import type { Checkpoint } from '../backend.js';

export type StoredKind = 'paused' | 'snapshots';

const ENTRY_ID = /^[0-9a-f]{32}$/;
const MANIFEST = 'manifest.json';

const LostStateSchema = z.object({ language: z.string(), name: z.string(), type: z.string(), reason: z.string() });

const ManifestSchema = z.object({
  format: z.literal(1),
  id: z.string().regex(ENTRY_ID),
  pool: z.string(),
  backend: z.string(),
  containerType: z.string(),
  /** The paused session's identifier (paused entries only). */
  identifier: z.string().optional(),
  /** The session id it had when paused (for events and logs). */
  sessionId: z.string(),
  sessionCreatedAt: z.number(),
  pausedAt: z.number(),
  /** When a paused entry is deleted unless resumed (maxPausedPeriodInSeconds); absent: never. */
  expiresAt: z.number().optional(),
  /** Bytes the entry occupies on disk. */
  bytes: z.number().int().nonnegative(),
  checkpoint: z.object({
    level: z.enum(['interpreter', 'machine']),
    bytes: z.number().nonnegative(),
    lost: z.array(LostStateSchema),
    meta: z.unknown(),
  }),
});

/** One stored checkpoint's description (the schema above checks it on every load). */
export interface StoredManifest {
  readonly format: 1;
  readonly id: string;
  readonly pool: string;
  readonly backend: string;
  readonly containerType: string;
  readonly identifier?: string | undefined;
  readonly sessionId: string;
  readonly sessionCreatedAt: number;
  readonly pausedAt: number;
  readonly expiresAt?: number | undefined;
  readonly bytes: number;
  readonly checkpoint: Checkpoint;
}

export interface ScanResult {
  readonly entries: StoredManifest[];
  /** Entries removed because they were incomplete or their manifest was unreadable. */
  readonly removed: { readonly id: string; readonly reason: string }[];
}

function du(path: string): number {
  const info = statSync(path);
  if (!info.isDirectory()) return info.size;
  let total = 0;
  for (const name of readdirSync(path)) total += du(join(path, name));
  return total;
}

export class PauseStore {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  /** Create the directory tree (0700), correcting the mode of an existing one. */
  ensure(): void {
    for (const dir of [this.root, join(this.root, 'paused'), join(this.root, 'snapshots')]) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700);
    }
  }

  dir(kind: StoredKind, id: string): string {
    if (!ENTRY_ID.test(id)) throw new Error(`invalid stored entry id ${JSON.stringify(id)}`);
    return join(this.root, kind, id);
  }

  /** A new, empty, private directory for a checkpoint. */
  create(kind: StoredKind): { id: string; dir: string } {
    this.ensure();
    const id = randomBytes(16).toString('hex');
    const dir = this.dir(kind, id);
    mkdirSync(dir, { mode: 0o700 });
    return { id, dir };
  }

  /** Seal a finished checkpoint: measure it and write its manifest (atomically, 0600). */
  commit(kind: StoredKind, manifest: Omit<StoredManifest, 'bytes' | 'format'>): StoredManifest {
    const complete: StoredManifest = { ...manifest, format: 1, bytes: du(this.dir(kind, manifest.id)) };
    this.update(kind, complete);
    return complete;
  }

  /** Write (or rewrite, for a later expiry) an entry's manifest, atomically. */
  update(kind: StoredKind, manifest: StoredManifest): void {
    const dir = this.dir(kind, manifest.id);
    const tmp = join(dir, `${MANIFEST}.tmp`);
    writeFileSync(tmp, JSON.stringify(manifest), { mode: 0o600 });
    renameSync(tmp, join(dir, MANIFEST));
  }

  /** The entry's manifest; undefined when it is missing or does not parse. */
  load(kind: StoredKind, id: string): StoredManifest | undefined {
    try {
      const parsed = ManifestSchema.safeParse(JSON.parse(readFileSync(join(this.dir(kind, id), MANIFEST), 'utf8')));
      return parsed.success && parsed.data.id === id ? (parsed.data as unknown as StoredManifest) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Every complete entry of `pool`; incomplete and unreadable ones are removed and reported. */
  scan(kind: StoredKind, pool: string): ScanResult {
    const entries: StoredManifest[] = [];
    const removed: { id: string; reason: string }[] = [];
    let names: string[];
    try {
      names = readdirSync(join(this.root, kind));
    } catch {
      return { entries, removed };
    }
    for (const name of names) {
      if (!ENTRY_ID.test(name)) continue;
      const manifest = this.load(kind, name);
      if (manifest === undefined) {
        const complete = (() => {
          try {
            statSync(join(this.root, kind, name, MANIFEST));
            return true;
          } catch {
            return false;
          }
        })();
        this.remove(kind, name);
        removed.push({
          id: name,
          reason: complete ? 'its manifest is corrupt' : 'it was never completed (a crash while pausing)',
        });
        continue;
      }
      if (manifest.pool === pool) entries.push(manifest);
    }
    return { entries, removed };
  }

  /** Delete an entry and everything in it. Idempotent. */
  remove(kind: StoredKind, id: string): void {
    rmSync(this.dir(kind, id), { recursive: true, force: true });
  }

  /** Delete the whole data directory (a pool without a persistent one, at close). */
  wipe(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}
