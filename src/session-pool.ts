import { randomBytes } from 'node:crypto';

import { EventEmitter } from 'eventemitter3';

import type { Backend, DestroyReason } from './backend.js';
import { azurePropertiesToOptions, type AzurePoolOverrides } from './azure-properties.js';
import { InvalidRequestError, PoolClosedError, SessionNotFoundError, type SandpoolError } from './errors.js';
import type { SessionPoolEvents } from './events.js';
import { assertIdentifier, generateIdentifier } from './identifier.js';
import { resolvePoolOptions, type ResolvedPoolOptions, type SessionPoolOptions } from './options.js';
import { SessionExpiry } from './pool/expiry.js';
import { hostMemoryBudget, reservationPerSession } from './pool/host-budget.js';
import { BackgroundWork, OnceAsync, settleWithin } from './pool/once-async.js';
import { Allocator } from './pool/allocator.js';
import { PauseControl } from './pool/pause-control.js';
import { PoolEvents } from './pool/pool-events.js';
import { Snapshots } from './pool/snapshots.js';
import { applyPoolUpdate, type PoolUpdate } from './pool/pool-update.js';
import { SessionFactory } from './pool/session-factory.js';
import { slotInfo, type Slot } from './pool/slot.js';
import { SlotTable } from './pool/slot-table.js';
import { PoolStatistics } from './pool/statistics.js';
import { AcquiresInFlight } from './pool/acquires-in-flight.js';
import { parseBinding, type SessionBinding } from './pool/session-binding.js';
import { Session } from './session.js';
import type { SessionOwner } from './session-api.js';
import type { AcquireOptions, PoolStats, SessionInfo, SnapshotInfo } from './session-types.js';

export type { AcquireOptions } from './session-types.js';

/**
 * A pool of pre-started, isolated sessions over one backend. `acquire(identifier)` is
 * get-or-create: an unknown identifier takes a Ready session at once, later calls reach the same
 * session. Idle sessions are destroyed after the cooldown and the pool refills itself.
 *
 * @example
 * const pool = new SessionPool({ backend: new QuickJSBackend(), readySessionInstances: 5 });
 * await pool.start();
 * const session = await pool.acquire('user-42');
 * const { result } = await session.execute({ code: '6 * 7' }); // 42
 * await pool.close();
 */
export class SessionPool extends EventEmitter<SessionPoolEvents> {
  /** Unique id of this pool instance; backends label what they create with it. */
  readonly ownerId = `${process.pid}-${randomBytes(4).toString('hex')}`;
  readonly backend: Backend;
  #options: ResolvedPoolOptions;
  readonly #stats = new PoolStatistics();
  readonly #slots: SlotTable;
  /** Env and files of acquires in flight, bound when their slot is handed over. */
  readonly #acquiring = new AcquiresInFlight(async (session, failure) => {
    const slot = this.#slots.allocatedTo(session.identifier);
    if (slot?.session === session) await this.#destroy(slot, 'failed', `binding at acquire failed: ${failure.message}`);
  });
  readonly #background = new BackgroundWork();
  readonly #preparation = new OnceAsync(async () => {
    await this.#factory.prepare().catch((error: SandpoolError) => {
      this.#events.emit('error', { ...this.#events.base(), operation: 'prepare', error });
      throw error;
    });
    // Paused sessions a previous run left in a persistent dataDirectory come back as Paused.
    this.#paused.load();
  });
  readonly #factory: SessionFactory;
  readonly #allocator: Allocator;
  readonly #unsubscribeBudget: () => void;
  #closing: Promise<void> | undefined;
  readonly #expiry = new SessionExpiry(
    () => this.#options,
    (slot, reason) => this.#paused.expire(slot, reason),
  );
  readonly #paused: PauseControl;
  readonly #snapshots: Snapshots;

  /** Executions (and other exclusive session operations) accepted and not yet settled, pool-wide. */
  #executing = 0;
  /** What every Session of this pool reports back: activity, reaping, statistics, events. */
  readonly #owner: SessionOwner;
  readonly #events: PoolEvents;
  /** @throws {InvalidOptionsError} naming every invalid option */
  constructor(options: SessionPoolOptions) {
    super();
    this.#options = resolvePoolOptions(options);
    this.backend = this.#options.backend;
    this.#events = new PoolEvents(this, () => this.#options.name, this.backend.name);
    this.#owner = {
      backend: this.backend,
      options: () => this.#options,
      emit: (event, payload) => this.#events.emit(event, payload),
      listening: (event) => this.#events.listening(event),
      destroy: (slot, reason, message) => this.#destroy(slot, reason, message),
      executionBegan: () => {
        this.#executing += 1;
      },
      idle: (slot) => {
        this.#executing -= 1;
        if (this.#executing === 0) this.#allocator.idle();
        this.#expiry.check(slot);
      },
      expiresAt: (slot) => this.#expiry.expiresAt(slot),
      executed: (durationMs, first) => this.#stats.recordExecution(durationMs, first),
      pause: (slot, trigger) => this.#paused.pause(slot, trigger),
      resume: (slot, session, acquire) => {
        this.#assertOpen();
        return this.#paused.resume(slot, session, acquire);
      },
      extendPaused: (slot, until) => this.#paused.extend(slot, until),
      fork: (session, identifier) => this.#snapshots.fork(session, identifier),
    };
    this.#slots = new SlotTable(this.#stats, hostMemoryBudget, reservationPerSession(this.#options));
    this.#unsubscribeBudget = hostMemoryBudget.subscribe(() => this.#allocator.refill());
    this.#factory = new SessionFactory(this.backend, this.ownerId, () => this.#options, {
      pending: (slot, onDemand) => this.#allocator.pending(slot, onDemand),
      created: (slot, createMs) => this.#allocator.created(slot, createMs),
      failed: (slot, failure) => this.#allocator.createFailed(slot, failure),
      exited: (slot, exit) => {
        if (slot.state === 'Ready' || slot.state === 'Allocated') void this.#destroy(slot, exit.reason, exit.message);
      },
      destroyFailed: (slot, error) => this.#events.emit('error', { ...this.#events.of(slot), operation: 'destroy', error }),
      dropped: (slot) => this.#allocator.dropped(slot),
      track: (work) => this.#background.track(work),
    });
    // What the allocator and the pause control share of the pool.
    const core = {
      options: () => this.#options,
      slots: this.#slots,
      emit: this.#owner.emit,
      base: (slot: Slot) => this.#events.of(slot),
      destroy: (slot: Slot, reason: DestroyReason, message?: string) => this.#destroy(slot, reason, message),
    };
    this.#allocator = new Allocator({
      ...core,
      backendName: this.backend.name,
      stats: this.#stats,
      factory: this.#factory,
      closed: () => this.#closing !== undefined,
      prepared: () => this.#preparation.done,
      listening: this.#owner.listening,
      poolBase: () => this.#events.base(),
      newSession: (slot) => new Session(this.#owner, slot),
      claimed: (session, identifier) => this.#acquiring.claim(session, identifier),
      arm: (slot) => this.#expiry.arm(slot),
      expiresAt: (slot) => this.#expiry.expiresAt(slot),
      busy: () => this.#executing > 0,
    });
    this.#paused = new PauseControl({
      ...core,
      backend: this.backend,
      spec: (sessionId) => ({ sessionId, ...this.#factory.specBase() }),
      destroyHandle: (handle) => this.#factory.destroyHandle(handle),
      allocateReady: (identifier, session, acquire) => this.#acquireNew(identifier, acquire, performance.now(), session),
      allocateRestored: (identifier, session, restore) => this.#allocator.restored(identifier, session, restore),
      adopt: (slot) => {
        slot.session = new Session(this.#owner, slot);
      },
      refill: () => this.#allocator.refill(),
    });
    this.#snapshots = new Snapshots(this.#paused, {
      poolName: () => this.#options.name,
      acquire: (identifier, acquire) => this.acquire(identifier, acquire),
      assertFree: (identifier) => {
        assertIdentifier(identifier);
        if (this.get(identifier) !== undefined || this.#acquiring.has(identifier)) throw this.#taken(identifier);
      },
    });
  }

  /** Build a pool from an Azure `Microsoft.App/sessionPools` `properties` object. */
  static fromSessionPoolProperties(properties: unknown, overrides: AzurePoolOverrides): SessionPool {
    return new SessionPool(azurePropertiesToOptions(properties, overrides));
  }

  /** A new identifier from a cryptographic random source (128 bits, hex). */
  static generateIdentifier(): string {
    return generateIdentifier();
  }

  get name(): string {
    return this.#options.name;
  }

  /** The validated options, with every default applied. */
  get options(): ResolvedPoolOptions {
    return this.#options;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Prepare the backend and resolve once `readySessionInstances` sessions are Ready. */
  async start(): Promise<void> {
    this.#assertOpen();
    await this.#preparation.run();
    this.#allocator.refill();
    await this.#allocator.starting.wait();
    this.#allocator.filled = true;
  }

  /**
   * Get the session of `identifier`, allocating a Ready one if it has none (get-or-create).
   * Concurrent calls with the same new identifier share one session.
   * @throws {InvalidIdentifierError} the identifier breaks Azure's rules
   * @throws {PoolExhaustedError} at maxConcurrentSessions, unless `wait` is set
   * @throws {PoolClosedError} the pool is closed
   * @throws {BackendError} the backend cannot create sessions right now
   */
  acquire(identifier: string, options: AcquireOptions = {}): Promise<Session> {
    let binding: SessionBinding | undefined;
    try {
      this.#assertOpen();
      assertIdentifier(identifier);
      binding = parseBinding(options, this.backend, this.#options.containerType);
    } catch (error) {
      return Promise.reject(error);
    }
    if (options.from !== undefined) {
      if (this.get(identifier) !== undefined || this.#acquiring.has(identifier)) return Promise.reject(this.#taken(identifier));
      const from = options.from;
      return this.#acquiring.join(
        identifier,
        this.#preparation.run().then(() => this.#snapshots.start(identifier, from, options)),
      );
    }
    const existing = this.#slots.allocatedTo(identifier);
    if (existing !== undefined) {
      existing.lastAccessedAt = Date.now();
      return Promise.resolve(existing.session!);
    }
    const inFlight = this.#acquiring.get(identifier);
    if (inFlight !== undefined) return inFlight;
    const paused = this.#slots.pausedTo(identifier)?.session;
    if (paused !== undefined)
      return this.#acquiring.join(
        identifier,
        paused.resumeFor(options).then(() => paused),
      );
    // Picked up by the allocator the moment a slot is handed over, so the binding leads the chain.
    if (binding !== undefined) this.#acquiring.bindOnClaim(identifier, binding);
    const allocated = this.#acquireNew(identifier, options, performance.now()).then((slot) => slot.session!);
    return this.#acquiring.join(identifier, binding === undefined ? allocated : allocated.then((s) => this.#acquiring.bound(s)));
  }

  /** The session of `identifier` (running or paused), or undefined. Never creates or resumes one. */
  get(identifier: string): Session | undefined {
    return (this.#slots.allocatedTo(identifier) ?? this.#slots.pausedTo(identifier))?.session;
  }

  /**
   * End the session of `identifier` now (reason `stopped`) and wipe its data. An acquire of the
   * identifier still in flight is waited for, so the session it yields is ended too.
   * Resolves true when there was a session to end, false when the identifier had none.
   * @throws {InvalidIdentifierError} the identifier breaks Azure's rules
   */
  async release(identifier: string): Promise<boolean> {
    assertIdentifier(identifier);
    const inFlight = this.#acquiring.get(identifier);
    if (inFlight !== undefined) await inFlight.catch(() => undefined);
    const slot = this.#slots.allocatedTo(identifier) ?? this.#slots.pausedTo(identifier);
    if (slot === undefined) return false;
    await this.#destroy(slot, 'stopped');
    return true;
  }

  /**
   * Keep the current state of `identifier`'s session (running or paused) as a named snapshot;
   * a running session waits for its executions, then keeps running. Resolves with the snapshot id,
   * for `acquire(newIdentifier, { from })` (any number of times) until `deleteSnapshot(id)`.
   * @throws {UnsupportedError} the backend cannot fork
   * @throws {SessionNotFoundError} the identifier has no session
   */
  async snapshot(identifier: string): Promise<string> {
    assertIdentifier(identifier);
    this.#assertOpen();
    const session = this.get(identifier);
    if (session === undefined) throw new SessionNotFoundError(`no session with this identifier in session pool "${this.name}"`);
    return await this.#snapshots.take(session);
  }

  /** The pool's named snapshots. */
  snapshots(): SnapshotInfo[] {
    return this.#snapshots.list();
  }

  /** Delete a named snapshot; false when there is none with that id. */
  deleteSnapshot(snapshotId: string): boolean {
    return this.#snapshots.delete(snapshotId);
  }

  /** A snapshot of every session (pending, ready, allocated and paused). */
  sessions(): SessionInfo[] {
    const slots = [...this.#slots.liveSlots(), ...this.#slots.pausedSlots()];
    return slots.map((slot) => slotInfo(slot, this.#expiry.expiresAt(slot)));
  }

  stats(): PoolStats {
    return this.#stats.snapshot({
      name: this.#options.name,
      backend: this.backend.name,
      closed: this.closed,
      pending: this.#slots.pending,
      ready: this.#slots.ready,
      allocated: this.#slots.allocated,
      paused: this.#slots.paused,
      pausedBytes: this.#paused.pausedBytes(),
      waiting: this.#allocator.waiters.length,
      maxConcurrentSessions: this.#options.maxConcurrentSessions,
      readySessionInstances: this.#options.readySessionInstances,
      readyTarget: this.#allocator.readyTarget(),
      arrivalsPerSecond: this.#allocator.arrivals.perSecond(),
    });
  }

  /** Change scale and lifecycle settings of a running pool (Azure's PATCH-able properties). */
  update(patch: PoolUpdate): void {
    this.#assertOpen();
    this.#options = applyPoolUpdate(this.#options, patch);
    for (const slot of this.#slots.newestReadyFirst()) {
      if (this.#slots.ready <= this.#allocator.readyTarget()) break;
      void this.#destroy(slot, 'stopped');
    }
    for (const slot of this.#slots.allocatedSlots()) this.#expiry.arm(slot);
    this.#allocator.refill();
  }

  /**
   * Stop refilling, reject waiting acquires, let in-flight executions finish (up to
   * `closeGracePeriodSeconds`), destroy every session, then close the backend. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      // Mark closed before any teardown runs, so nothing it triggers can start a refill.
      this.#closing = Promise.resolve();
      this.#closing = this.#shutdown();
    }
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- internals -------------------------------------------------------------------------------

  #assertOpen(): void {
    if (this.#closing !== undefined) throw new PoolClosedError(`session pool "${this.#options.name}" is closed`);
  }

  /** Allocate a Ready session to `identifier` (rebinding `reuse`, a resumed Session), waiting for one if needed. */
  async #acquireNew(identifier: string, options: AcquireOptions, startedAt: number, reuse?: Session): Promise<Slot> {
    await this.#preparation.run();
    this.#assertOpen();
    return await this.#allocator.take(identifier, options, startedAt, reuse);
  }

  /** A started session's identifier cannot take another one (a fork or a snapshot needs a new identifier). */
  #taken(identifier: string): InvalidRequestError {
    return new InvalidRequestError(
      `identifier "${identifier}" already has a session in pool "${this.name}"; use a new identifier`,
    );
  }

  #destroy(slot: Slot, reason: DestroyReason, message?: string): Promise<void> {
    if (slot.destroyed !== undefined) return slot.destroyed;
    const previous = slot.state;
    if (previous === 'Paused') {
      this.#paused.deletePaused(slot, reason === 'pauseExpired' ? reason : reason === 'poolClosed' ? reason : 'stopped');
      slot.destroyed = Promise.resolve();
      return slot.destroyed;
    }
    this.#slots.transition(slot, 'Destroyed', reason);
    if (previous === 'Pending') {
      if (slot.refill) this.#stats.refillEnded(performance.now());
      // It leaves Pending now; the factory drops whatever the backend still returns for it.
      slot.createAbort.abort();
      slot.destroyed = Promise.resolve();
      return slot.destroyed;
    }
    const lifetimeMs = Date.now() - slot.createdAt;
    this.#events.emit('sessionDestroyed', { ...this.#events.of(slot), identifier: slot.identifier, reason, lifetimeMs, message });
    slot.destroyed = this.#factory.destroy(slot, reason);
    this.#allocator.refill();
    return slot.destroyed;
  }

  async #shutdown(): Promise<void> {
    this.#allocator.close(new PoolClosedError(`session pool "${this.#options.name}" was closed`));
    const live = this.#slots.liveSlots();
    const busy = live.filter((s) => (s.session?.executionsInFlight ?? 0) > 0).map((s) => s.session!.whenIdle());
    await settleWithin(busy, this.#options.closeGracePeriodSeconds * 1000);
    for (const slot of this.#slots.liveSlots()) void this.#destroy(slot, 'poolClosed');
    this.#paused.close();
    await this.#background.drain();
    this.#unsubscribeBudget();
    if (this.#options.ownsBackend) await this.backend.close();
  }
}
