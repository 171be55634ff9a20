/**
 * Pause, resume, snapshot and fork for one pool, over the backend's `checkpoint`/`restore`
 * (src/backend.ts) and the on-disk store (pause-store.ts). The pool keeps the slot states and the
 * capacity; this class decides what a pause writes, where a resume gets its session from, and
 * when stored checkpoints go:
 *
 * - pause: checkpoint into a fresh store entry, then the slot goes Allocated → Paused (its memory
 *   and room go back to the pool) and the backend session is destroyed;
 * - resume: an `interpreter` checkpoint is loaded into a Ready session (taken like an acquire
 *   takes one), a `machine` checkpoint starts a new session of its own; the paused slot is then
 *   superseded and its entry removed. A restore that fails ends that session (reason `failed`) and
 *   removes its checkpoint: never another session, never a half-restored one handed out;
 * Named snapshots and forks build on `checkpoint` and `restore` (snapshots.ts).
 */

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type {
  Backend,
  BackendSession,
  Checkpoint,
  CreateOptions,
  DestroyReason,
  LostState,
  Restored,
  SessionSpec,
} from '../backend.js';
import type { ExpiryReason } from './expiry.js';
import { InvalidRequestError, toSandpoolError, UnsupportedError } from '../errors.js';
import type { SessionPoolEvents, SessionResumedEvent } from '../events.js';
import type { ResolvedPoolOptions } from '../options.js';
import type { Session } from '../session.js';
import type { AcquireOptions, PauseResult, ResumeResult } from '../session-types.js';
import { PauseStore, type StoredKind, type StoredManifest } from './pause-store.js';
import { newSlot, type Slot } from './slot.js';
import type { SlotTable } from './slot-table.js';

const MiB = 1024 * 1024;

/** Errors thrown by the backend's restore itself: the checkpoint could not be brought back. */
const restoreFailures = new WeakSet<object>();

function restoreFailed(error: unknown): never {
  const failure = toSandpoolError(error, 'restoring the session failed');
  restoreFailures.add(failure);
  throw failure;
}

export interface PauseHost {
  readonly backend: Backend;
  options(): ResolvedPoolOptions;
  readonly slots: SlotTable;
  emit<K extends keyof SessionPoolEvents>(event: K, payload: Parameters<SessionPoolEvents[K]>[0]): void;
  /** Fields every event about `slot` carries. */
  base(slot: Slot): { pool: string; backend: string; sessionId: string; at: number };
  /** End a backend session the pool no longer tracks (tracked work; never rejects). */
  destroyHandle(handle: BackendSession): Promise<void>;
  /** End a live slot with a reason (the pool's destroy). */
  destroy(slot: Slot, reason: DestroyReason, message?: string): Promise<void>;
  /** The spec the pool's sessions are created from, for `sessionId`. */
  spec(sessionId: string): SessionSpec;
  /** A Ready slot allocated to `identifier` for `session` (or a new Session), waited for like an acquire. */
  allocateReady(identifier: string, session: Session | undefined, options: AcquireOptions): Promise<Slot>;
  /** A new slot allocated to `identifier`, started by `restore` instead of a backend create. */
  allocateRestored(
    identifier: string,
    session: Session | undefined,
    restore: (spec: SessionSpec, options: CreateOptions) => Promise<Restored>,
  ): Promise<{ slot: Slot; lost: readonly LostState[] }>;
  /** The public handle of a paused slot found on disk. */
  adopt(slot: Slot): void;
  refill(): void;
}

export class PauseControl {
  #store: PauseStore | undefined;
  /** No dataDirectory was given: the store is a private temp directory, wiped on close. */
  #temporary = false;

  constructor(private readonly host: PauseHost) {}

  /** The store, created on first use. */
  get store(): PauseStore {
    if (this.#store === undefined) {
      const configured = this.host.options().dataDirectory;
      this.#temporary = configured === undefined;
      const root = configured ?? mkdtempSync(join(tmpdir(), `sandpool-${this.host.options().name}-`));
      this.#store = new PauseStore(root);
      this.#store.ensure();
    }
    return this.#store;
  }

  /** Paused sessions' bytes on disk. */
  pausedBytes(): number {
    let total = 0;
    for (const slot of this.host.slots.pausedSlots()) total += slot.paused?.manifest.bytes ?? 0;
    return total;
  }

  assertCan(what: 'pause' | 'fork'): void {
    const { backend } = this.host;
    const options = this.host.options();
    if ((backend.capabilities.pause ?? 'none') === 'none' || backend.checkpoint === undefined || backend.restore === undefined) {
      throw new UnsupportedError(`backend "${backend.name}" cannot ${what} sessions (capabilities.pause is none)`);
    }
    if (what === 'fork' && backend.capabilities.fork !== true)
      throw new UnsupportedError(`backend "${backend.name}" cannot fork sessions`);
    if (options.containerType === 'CustomContainer') {
      throw new UnsupportedError(`CustomContainer sessions cannot ${what}: their state is their image's own`);
    }
  }

  /** The most a checkpoint may take: the session's memory and disk, with room for headers. */
  #maxBytes(): number {
    const { memoryMb, diskMb } = this.host.options().limits;
    return Math.ceil((memoryMb + diskMb) * 1.1 * MiB) + 64 * MiB;
  }

  /** Checkpoint `slot` (Allocated, idle) into a new store entry of `kind`; the session keeps running unless `final`. */
  async checkpoint(slot: Slot, kind: StoredKind, final: boolean): Promise<{ manifest: StoredManifest; durationMs: number }> {
    const started = performance.now();
    const { id, dir } = this.store.create(kind);
    let checkpoint: Checkpoint;
    try {
      checkpoint = await this.host.backend.checkpoint!(slot.handle!, { dir, maxBytes: this.#maxBytes(), final });
    } catch (error) {
      this.store.remove(kind, id);
      throw toSandpoolError(error, 'writing the session checkpoint failed');
    }
    const options = this.host.options();
    const manifest = this.store.commit(kind, {
      id,
      pool: options.name,
      backend: this.host.backend.name,
      containerType: options.containerType,
      identifier: slot.identifier,
      sessionId: slot.id,
      sessionCreatedAt: slot.createdAt,
      pausedAt: Date.now(),
      ...(kind === 'paused' ? { expiresAt: Date.now() + options.maxPausedPeriodInSeconds * 1000 } : {}),
      checkpoint,
    });
    return { manifest, durationMs: performance.now() - started };
  }

  /** The cooldown or maxAlive passed: destroy, or pause under `idleAction: 'pause'` (destroy if that fails). */
  expire(slot: Slot, reason: ExpiryReason): void {
    if (reason !== 'cooldown' || this.host.options().idleAction !== 'pause' || slot.session === undefined) {
      void this.host.destroy(slot, reason);
      return;
    }
    slot.session.pauseWhenIdle().catch((error: unknown) => {
      if (slot.state === 'Allocated')
        void this.host.destroy(slot, 'cooldown', `pausing the idle session failed: ${String(error)}`);
    });
  }

  /** Pause an Allocated, idle slot. On failure the session keeps running as it was. */
  async pause(slot: Slot, trigger: 'requested' | 'idle'): Promise<PauseResult> {
    this.assertCan('pause');
    const handle = slot.handle!;
    let written: { manifest: StoredManifest; durationMs: number };
    try {
      written = await this.checkpoint(slot, 'paused', true);
    } catch (error) {
      const failure = toSandpoolError(error, 'pausing the session failed');
      this.host.emit('error', { ...this.host.base(slot), operation: 'pause', error: failure });
      throw failure;
    }
    const { manifest, durationMs } = written;
    if (slot.state !== 'Allocated') {
      // Destroyed while its state was written (the pool closed): the checkpoint has no owner.
      this.store.remove('paused', manifest.id);
      return { bytes: 0, durationMs, lost: [] };
    }
    this.host.slots.transition(slot, 'Paused');
    slot.handle = undefined;
    this.#holdPaused(slot, manifest);
    // Resolve once the sandbox is gone: its memory is back when pause() says so.
    await this.host.destroyHandle(handle);
    const result = { bytes: manifest.bytes, durationMs, lost: manifest.checkpoint.lost };
    this.host.emit('sessionPaused', { ...this.host.base(slot), identifier: slot.identifier!, trigger, ...result });
    this.host.refill();
    return result;
  }

  /** A paused slot keeps its manifest and a timer that deletes it after maxPausedPeriodInSeconds. */
  #holdPaused(slot: Slot, manifest: StoredManifest): void {
    const delay = Math.min(Math.max(0, (manifest.expiresAt ?? Number.POSITIVE_INFINITY) - Date.now()), 2 ** 31 - 1);
    slot.paused = { manifest, timer: undefined };
    slot.paused.timer = setTimeout(() => {
      if (slot.state !== 'Paused') return;
      if (Date.now() < (manifest.expiresAt ?? Number.POSITIVE_INFINITY)) return this.#holdPaused(slot, manifest);
      this.deletePaused(slot, 'pauseExpired');
    }, delay).unref();
  }

  /** Keep a paused session until at least `until` (never sooner than planned); returns its deletion time. */
  extend(slot: Slot, until: number): number {
    const held = slot.paused!;
    const expiresAt = Math.max(held.manifest.expiresAt ?? 0, until);
    const manifest = { ...held.manifest, expiresAt };
    this.store.update('paused', manifest);
    if (held.timer !== undefined) clearTimeout(held.timer);
    this.#holdPaused(slot, manifest);
    return expiresAt;
  }

  /** Delete a paused session and wipe its checkpoint. */
  deletePaused(slot: Slot, reason: 'stopped' | 'pauseExpired' | 'poolClosed'): void {
    const manifest = slot.paused!.manifest;
    this.host.slots.transition(slot, 'Destroyed', reason);
    this.store.remove('paused', manifest.id);
    const lifetimeMs = Date.now() - slot.createdAt;
    this.host.emit('sessionDestroyed', { ...this.host.base(slot), identifier: slot.identifier, reason, lifetimeMs });
  }

  /**
   * Bring a checkpoint back as a session allocated to `identifier` (`session` is rebound to it,
   * or a new one is made). Interpreter-level checkpoints load into a Ready session, machine-level
   * ones start their own. A failed restore ends the session it was loading into.
   */
  async restore(
    identifier: string,
    session: Session | undefined,
    dir: string,
    manifest: StoredManifest,
    fork: boolean,
    acquire: AcquireOptions,
  ): Promise<{ slot: Slot; lost: readonly LostState[] }> {
    const { backend } = this.host;
    const checkpoint = manifest.checkpoint;
    if (manifest.backend !== backend.name) {
      throw new InvalidRequestError(`this checkpoint was written by backend "${manifest.backend}", not "${backend.name}"`);
    }
    if (checkpoint.level === 'machine') {
      return await this.host.allocateRestored(identifier, session, (spec, options) =>
        backend.restore!(spec, { ...options, dir, checkpoint, fork }).catch(restoreFailed),
      );
    }
    const slot = await this.host.allocateReady(identifier, session, acquire);
    try {
      const spec = this.host.spec(slot.handle!.id);
      const restored = await backend.restore!(spec, { dir, checkpoint, fork, into: slot.handle, onExit: () => undefined });
      return { slot, lost: restored.lost };
    } catch (error) {
      await this.host.destroy(slot, 'failed', toSandpoolError(error, 'restoring the session failed').message);
      restoreFailed(error);
    }
  }

  /** Resume a paused slot: its session comes back in another slot, which is returned. */
  async resume(paused: Slot, session: Session, acquire: AcquireOptions = {}): Promise<{ slot: Slot; result: ResumeResult }> {
    const started = performance.now();
    const manifest = paused.paused!.manifest;
    const dir = this.store.dir('paused', manifest.id);
    let restored: { slot: Slot; lost: readonly LostState[] };
    try {
      restored = await this.restore(paused.identifier!, session, dir, manifest, false, acquire);
    } catch (error) {
      const failure = toSandpoolError(error, 'resuming the session failed');
      this.host.emit('error', { ...this.host.base(paused), operation: 'resume', error: failure });
      // A checkpoint that cannot be restored goes with its session; one that merely found no room
      // (exhausted pool, timeout, abort) stays paused for the next try.
      if (paused.state === 'Paused' && restoreFailures.has(failure)) this.#supersede(paused);
      throw failure;
    }
    if (paused.state === 'Paused') this.#supersede(paused);
    restored.slot.extendedUntil = paused.extendedUntil;
    const lost = [...manifest.checkpoint.lost, ...restored.lost];
    const result = { resumed: true, durationMs: performance.now() - started, bytes: manifest.bytes, lost };
    const { durationMs, bytes } = result;
    this.announce(restored.slot, {
      identifier: paused.identifier!,
      previousSessionId: paused.id,
      kind: 'resume',
      durationMs,
      bytes,
      lost,
    });
    return { slot: restored.slot, result };
  }

  /** The `sessionResumed` event of a session now living in `slot`. */
  announce(slot: Slot, event: Omit<SessionResumedEvent, 'pool' | 'backend' | 'sessionId' | 'at'>): void {
    this.host.emit('sessionResumed', { ...this.host.base(slot), ...event });
  }

  #supersede(paused: Slot): void {
    this.host.slots.transition(paused, 'Destroyed', 'superseded');
    this.store.remove('paused', paused.paused!.manifest.id);
  }

  /** At start: the paused sessions a previous run of this pool left on disk (a persistent dataDirectory). */
  load(): void {
    if (this.host.options().dataDirectory === undefined) return;
    const { entries, removed } = this.store.scan('paused', this.host.options().name);
    for (const { id, reason } of removed) {
      const error = toSandpoolError(new Error(`removed stored paused session ${id}: ${reason}`), 'loading paused sessions');
      this.host.emit('error', {
        pool: this.host.options().name,
        backend: this.host.backend.name,
        at: Date.now(),
        operation: 'resume',
        error,
      });
    }
    for (const manifest of entries.sort((a, b) => b.pausedAt - a.pausedAt)) {
      const identifier = manifest.identifier;
      if (identifier === undefined || this.host.slots.pausedTo(identifier) !== undefined) {
        this.store.remove('paused', manifest.id); // an older pause of the same identifier
        continue;
      }
      // The same session id as before the restart: it names the same session.
      const slot: Slot = { ...newSlot(manifest.sessionCreatedAt), id: manifest.sessionId };
      this.host.slots.transition(slot, 'Paused', identifier);
      this.#holdPaused(slot, manifest);
      this.host.adopt(slot);
    }
  }

  /** The pool closes: paused sessions stay on disk with a dataDirectory, else everything is wiped. */
  close(): void {
    for (const slot of this.host.slots.pausedSlots()) {
      if (slot.paused?.timer !== undefined) clearTimeout(slot.paused.timer);
      if (this.#temporary) this.deletePaused(slot, 'poolClosed');
    }
    if (this.#temporary) this.#store?.wipe();
  }
}
