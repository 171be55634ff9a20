/**
 * Named snapshots and forks of one pool. A snapshot is a checkpoint kept under
 * `<dataDirectory>/snapshots/` until deleted: of a running session (it waits for the session's
 * executions and keeps running afterwards) or, for a paused session, a copy of its checkpoint.
 * Every session started from one is a fork: random generators reseeded, nothing writable shared
 * with the source or with other forks. `session.fork(identifier)` is a snapshot that lives only as
 * long as the fork's start.
 */

import { cpSync } from 'node:fs';

import { InvalidRequestError, SessionNotFoundError } from '../errors.js';
import type { Session } from '../session.js';
import type { AcquireOptions, SnapshotInfo } from '../session-types.js';
import type { PauseControl } from './pause-control.js';
import type { StoredManifest } from './pause-store.js';

const SNAPSHOT_ID = /^[0-9a-f]{32}$/;

export interface SnapshotHost {
  /** The pool's name, for error messages and to tell its snapshots from others'. */
  poolName(): string;
  /** `pool.acquire(identifier, options)`. */
  acquire(identifier: string, options: AcquireOptions): Promise<Session>;
  /** Throws InvalidRequestError when `identifier` already has (or is getting) a session. */
  assertFree(identifier: string): void;
}

export class Snapshots {
  constructor(
    private readonly control: PauseControl,
    private readonly host: SnapshotHost,
  ) {}

  /** Take a snapshot of `session`, in its order of operations; resolves with the snapshot's id. */
  async take(session: Session): Promise<string> {
    this.control.assertCan('fork');
    return await session.exclusive(async () => {
      const { slot } = session;
      const { store } = this.control;
      if (slot.state === 'Paused') {
        const source = slot.paused!.manifest;
        const { id, dir } = store.create('snapshots');
        cpSync(store.dir('paused', source.id), dir, { recursive: true, filter: (path) => !path.endsWith('manifest.json') });
        const { format: _format, bytes: _bytes, expiresAt: _expires, ...rest } = source;
        return store.commit('snapshots', { ...rest, id }).id;
      }
      if (slot.state !== 'Allocated') throw new SessionNotFoundError(`session ${slot.id} no longer exists (it was destroyed)`);
      return (await this.control.checkpoint(slot, 'snapshots', false)).manifest.id;
    });
  }

  /** A new session for `identifier` from a snapshot: a fork (reseeded RNGs, nothing shared). */
  async start(identifier: string, snapshotId: string, acquire: AcquireOptions): Promise<Session> {
    this.control.assertCan('fork');
    const manifest = this.#manifest(snapshotId);
    const started = performance.now();
    const dir = this.control.store.dir('snapshots', manifest.id);
    const { slot, lost: restoreLost } = await this.control.restore(identifier, undefined, dir, manifest, true, acquire);
    this.control.announce(slot, {
      identifier,
      previousSessionId: manifest.sessionId,
      kind: 'fork',
      snapshotId,
      durationMs: performance.now() - started,
      bytes: manifest.bytes,
      lost: [...manifest.checkpoint.lost, ...restoreLost],
    });
    return slot.session!;
  }

  /** `session.fork(identifier)`: a transient snapshot of `session`, started under `identifier`. */
  async fork(session: Session, identifier: string): Promise<Session> {
    this.host.assertFree(identifier);
    const snapshotId = await this.take(session);
    try {
      return await this.host.acquire(identifier, { from: snapshotId });
    } finally {
      this.delete(snapshotId);
    }
  }

  #manifest(snapshotId: string): StoredManifest {
    const manifest = SNAPSHOT_ID.test(snapshotId) ? this.control.store.load('snapshots', snapshotId) : undefined;
    if (manifest === undefined || manifest.pool !== this.host.poolName()) {
      throw new InvalidRequestError(`no snapshot "${String(snapshotId).slice(0, 64)}" in session pool "${this.host.poolName()}"`);
    }
    return manifest;
  }

  list(): SnapshotInfo[] {
    return this.control.store.scan('snapshots', this.host.poolName()).entries.map((m) => ({
      id: m.id,
      identifier: m.identifier ?? '',
      createdAt: new Date(m.pausedAt),
      bytes: m.bytes,
      lost: m.checkpoint.lost,
    }));
  }

  delete(snapshotId: string): boolean {
    if (!SNAPSHOT_ID.test(snapshotId) || this.control.store.load('snapshots', snapshotId) === undefined) return false;
    this.control.store.remove('snapshots', snapshotId);
    return true;
  }
}
