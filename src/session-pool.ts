import { randomBytes } from 'node:crypto';

import { EventEmitter } from 'eventemitter3';

import type { Backend, DestroyReason } from './backend.js';
import { azurePropertiesToOptions, type AzurePoolOverrides } from './azure-properties.js';
import { PoolClosedError, toSandpoolError, type SandpoolError } from './errors.js';
import type { SessionPoolEvents } from './events.js';
import { assertIdentifier, generateIdentifier } from './identifier.js';
import { resolvePoolOptions, type ResolvedPoolOptions, type SessionPoolOptions } from './options.js';
import { Backoff } from './pool/backoff.js';
import { backendFailingError, creationsWanted, exhaustedError, exhaustionReason, readyTarget } from './pool/capacity.js';
import { SessionExpiry } from './pool/expiry.js';
import { hostMemoryBudget, reservationPerSession } from './pool/host-budget.js';
import { ArrivalRate } from './pool/latency-window.js';
import { BackgroundWork, OnceAsync, settleWithin } from './pool/once-async.js';
import { applyPoolUpdate, type PoolUpdate } from './pool/pool-update.js';
import { SessionFactory } from './pool/session-factory.js';
import { slotInfo, type Slot } from './pool/slot.js';
import { SlotTable } from './pool/slot-table.js';
import { RefillScheduler } from './pool/refill-scheduler.js';
import { PoolStatistics } from './pool/statistics.js';
import { StartWaiters, WaiterQueue, waitInQueue } from './pool/waiters.js';
import type { ByteSource } from './pool/byte-source.js';
import { parseBinding } from './pool/session-binding.js';
import { Session, type SessionBinding, type SessionOwner } from './session.js';
import type { PoolStats, SessionInfo } from './session-types.js';

export interface AcquireOptions {
  /** At maxConcurrentSessions, wait for a free slot instead of rejecting with PoolExhaustedError. */
  readonly wait?: boolean | undefined;
  /** Give up waiting (rejects with AbortedError). */
  readonly signal?: AbortSignal | undefined;
  /** Give up waiting after this long (rejects with code SANDPOOL_ACQUIRE_TIMEOUT). */
  readonly timeoutMs?: number | undefined;
  /**
   * Environment variables bound to the session when this acquire claims it (a warm session stays
   * warm: one round trip to the sandbox, no restart). Python sees them in `os.environ`, Node.js in
   * `process.env`, shell commands and every process the code starts in their environment; the
   * isolates in a read-only `env` object. An identifier that already has a live session keeps its
   * own. Names match `[A-Za-z_][A-Za-z0-9_]*`; at most 256 variables and 256 KiB. Values are
   * secrets: never logged, never in an event, an error or `stats()`.
   */
  readonly env?: Readonly<Record<string, string>> | undefined;
  /** Files written under `/mnt/data` when this acquire claims the session: path → content. */
  readonly files?: Readonly<Record<string, ByteSource>> | undefined;
}

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
  readonly #arrivals: ArrivalRate;
  readonly #acquiring = new Map<string, Promise<Session>>();
  /** Env and files of acquires in flight, taken by #allocate when their slot is handed over. */
  readonly #bindings = new Map<string, SessionBinding>();
  readonly #waiters = new WaiterQueue();
  readonly #background = new BackgroundWork();
  readonly #preparation = new OnceAsync(() =>
    this.#factory.prepare().catch((error: SandpoolError) => {
      this.#emit('error', { ...this.#poolBase(), operation: 'prepare', error });
      throw error;
    }),
  );
  readonly #backoff = new Backoff();
  readonly #factory: SessionFactory;
  readonly #unsubscribeBudget: () => void;
  #closing: Promise<void> | undefined;
  readonly #starting = new StartWaiters(() => this.#slots.ready >= this.#readyTarget());
  readonly #expiry = new SessionExpiry(
    () => this.#options,
    (slot, reason) => void this.#destroy(slot, reason),
  );

  /** Executions accepted and not yet settled, across the pool's sessions. */
  #executing = 0;
  /** start() resolved (or the pool was first used without it): creations from now on are refills. */
  #filled = false;
  readonly #refills = new RefillScheduler({
    createOne: () => this.#createOne(),
    busy: () => this.#executing > 0,
    urgent: () => this.#waiters.length > 0,
  });

  /** What every Session of this pool reports back: activity, reaping, statistics, events. */
  readonly #owner: SessionOwner;
  /** @throws {InvalidOptionsError} naming every invalid option */
  constructor(options: SessionPoolOptions) {
    super();
    this.#options = resolvePoolOptions(options);
    this.backend = this.#options.backend;
    this.#owner = {
      backend: this.backend,
      options: () => this.#options,
      emit: (event, payload) => this.#emit(event, payload),
      listening: (event) => this.listenerCount(event) > 0,
      destroy: (slot, reason, message) => this.#destroy(slot, reason, message),
      executionBegan: () => {
        this.#executing += 1;
      },
      idle: (slot) => {
        this.#executing -= 1;
        if (this.#executing === 0) this.#refills.idle();
        this.#expiry.check(slot);
      },
      expiresAt: (slot) => this.#expiry.expiresAt(slot),
      executed: (durationMs, first) => this.#stats.recordExecution(durationMs, first),
    };
    this.#slots = new SlotTable(this.#stats, hostMemoryBudget, reservationPerSession(this.#options));
    this.#unsubscribeBudget = hostMemoryBudget.subscribe(() => this.#refill());
    this.#arrivals = new ArrivalRate(this.#options.adaptiveReady?.windowSeconds ?? 10);
    this.#factory = new SessionFactory(this.backend, this.ownerId, () => this.#options, {
      pending: (slot, onDemand) => {
        this.#slots.transition(slot, 'Pending');
        this.#emit('sessionPending', { ...this.#base(slot), onDemand });
      },
      created: (slot, createMs) => this.#created(slot, createMs),
      failed: (slot, failure) => this.#createFailed(slot, failure),
      exited: (slot, exit) => {
        if (slot.state === 'Ready' || slot.state === 'Allocated') void this.#destroy(slot, exit.reason, exit.message);
      },
      destroyFailed: (slot, error) => this.#emit('error', { ...this.#base(slot), operation: 'destroy', error }),
      track: (work) => this.#background.track(work),
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
    this.#refill();
    await this.#starting.wait();
    this.#filled = true;
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
    const existing = this.#slots.allocatedTo(identifier);
    if (existing !== undefined) {
      existing.lastAccessedAt = Date.now();
      return Promise.resolve(existing.session!);
    }
    const inFlight = this.#acquiring.get(identifier);
    if (inFlight !== undefined) return inFlight;
    // Picked up by #allocate the moment a slot is handed over, so the binding leads the chain.
    if (binding !== undefined) this.#bindings.set(identifier, binding);
    const allocated = this.#acquireNew(identifier, options, performance.now());
    const acquiring = binding === undefined ? allocated : allocated.then((session) => this.#bound(session, identifier));
    this.#acquiring.set(identifier, acquiring);
    const forget = () => {
      this.#acquiring.delete(identifier);
      this.#bindings.delete(identifier);
    };
    acquiring.then(forget, forget);
    return acquiring;
  }

  /** The live session of `identifier`, or undefined. Never creates one. */
  get(identifier: string): Session | undefined {
    return this.#slots.allocatedTo(identifier)?.session;
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
    const slot = this.#slots.allocatedTo(identifier);
    if (slot === undefined) return false;
    await this.#destroy(slot, 'stopped');
    return true;
  }

  /** A snapshot of every live session (pending, ready and allocated). */
  sessions(): SessionInfo[] {
    return this.#slots.liveSlots().map((slot) => slotInfo(slot, this.#expiry.expiresAt(slot)));
  }

  stats(): PoolStats {
    return this.#stats.snapshot({
      name: this.#options.name,
      backend: this.backend.name,
      closed: this.closed,
      pending: this.#slots.pending,
      ready: this.#slots.ready,
      allocated: this.#slots.allocated,
      waiting: this.#waiters.length,
      maxConcurrentSessions: this.#options.maxConcurrentSessions,
      readySessionInstances: this.#options.readySessionInstances,
      readyTarget: this.#readyTarget(),
      arrivalsPerSecond: this.#arrivals.perSecond(),
    });
  }

  /** Change scale and lifecycle settings of a running pool (Azure's PATCH-able properties). */
  update(patch: PoolUpdate): void {
    this.#assertOpen();
    this.#options = applyPoolUpdate(this.#options, patch);
    for (const slot of this.#slots.newestReadyFirst()) {
      if (this.#slots.ready <= this.#readyTarget()) break;
      void this.#destroy(slot, 'stopped');
    }
    for (const slot of this.#slots.allocatedSlots()) this.#expiry.arm(slot);
    this.#refill();
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

  #emit<K extends keyof SessionPoolEvents>(event: K, payload: Parameters<SessionPoolEvents[K]>[0]): void {
    try {
      (this.emit as (e: K, p: unknown) => boolean)(event, payload);
    } catch (error) {
      // A throwing listener must not break the pool's bookkeeping; report it once, asynchronously.
      queueMicrotask(() => {
        throw error;
      });
    }
  }

  #poolBase() {
    return { pool: this.#options.name, backend: this.backend.name, at: Date.now() };
  }

  #base(slot: Slot) {
    return { ...this.#poolBase(), sessionId: slot.id };
  }

  #assertOpen(): void {
    if (this.#closing !== undefined) throw new PoolClosedError(`session pool "${this.#options.name}" is closed`);
  }

  async #acquireNew(identifier: string, options: AcquireOptions, startedAt: number): Promise<Session> {
    await this.#preparation.run();
    this.#assertOpen();
    this.#filled = true;
    const warm = this.#waiters.length === 0 ? this.#slots.oldestReady() : undefined;
    if (warm !== undefined) return this.#allocate(warm, identifier, startedAt, 0, false);
    const incoming = this.#slots.pending - this.#waiters.length;
    const max = this.#options.maxConcurrentSessions;
    if (incoming <= 0 && this.#slots.room(max) <= 0) {
      const reason = exhaustionReason(this.#slots.size, max);
      const waiting = options.wait === true;
      this.#emit('poolExhausted', { ...this.#poolBase(), maxConcurrentSessions: max, waiting, reason });
      if (!waiting) throw exhaustedError(reason, { name: this.name, maxConcurrentSessions: max }, hostMemoryBudget);
    } else if (incoming <= 0 && this.#backoff.remaining() > 0) {
      throw backendFailingError(this.backend.name, this.#stats.lastError?.message, this.#backoff.remaining());
    }
    const waiting = waitInQueue(this.#waiters, {
      identifier,
      acquireStartedAt: startedAt,
      signal: options.signal,
      timeoutMs: options.timeoutMs,
    });
    this.#refill();
    return waiting;
  }

  /** Wait for the claimed session's binding; a session whose binding failed is destroyed. */
  async #bound(session: Session, identifier: string): Promise<Session> {
    try {
      await session.bound();
      return session;
    } catch (error) {
      const slot = this.#slots.allocatedTo(identifier);
      const failure = toSandpoolError(error, 'binding the environment or files failed');
      if (slot?.session === session) await this.#destroy(slot, 'failed', `binding at acquire failed: ${failure.message}`);
      throw failure;
    }
  }

  /** Hand a Ready slot to `identifier`. */
  #allocate(slot: Slot, identifier: string, startedAt: number, queueMs: number, coldMiss: boolean): Session {
    this.#slots.transition(slot, 'Allocated', identifier);
    const session = new Session(this.#owner, slot);
    slot.session = session;
    const binding = this.#bindings.get(identifier);
    if (binding !== undefined) {
      this.#bindings.delete(identifier);
      void session.bind(binding).catch(() => undefined); // awaited (and reported) by #bound
    }
    this.#arrivals.record(slot.allocatedAt!);
    this.#expiry.arm(slot);
    const latency = performance.now() - startedAt;
    this.#stats.recordAllocation(latency, queueMs, coldMiss);
    // The warm path is microseconds long: build event payloads only for someone listening.
    if (this.listenerCount('sessionAllocated') > 0) {
      this.#emit('sessionAllocated', { ...this.#base(slot), identifier, allocationLatencyMs: latency, queueMs, coldMiss });
    }
    this.#refill();
    return session;
  }

  #readyTarget(): number {
    return readyTarget(this.#options, this.#arrivals.perSecond(), this.#slots.allocated);
  }

  /**
   * Sessions may be wanted (something was taken, destroyed, failed or changed): creations start
   * off the caller's path, one per event-loop turn (refill-scheduler.ts).
   */
  #refill(): void {
    if (this.#closing !== undefined || !this.#preparation.done) return;
    this.#refills.request();
  }

  /** Start one creation if the ready set (plus waiters) is not covered, within the concurrency budget. */
  #createOne(): boolean {
    if (this.#closing !== undefined || !this.#preparation.done) return false;
    if (this.#backoff.deferred(() => this.#refill())) return false;
    const count = creationsWanted({
      target: this.#readyTarget(),
      waiting: this.#waiters.length,
      ready: this.#slots.ready,
      pending: this.#slots.pending,
      room: this.#slots.room(this.#options.maxConcurrentSessions),
      refillConcurrency: this.#options.refillConcurrency,
    });
    if (count <= 0) return false;
    const onDemand = this.#waiters.length > this.#slots.pending;
    const slot = this.#factory.start(onDemand, this.#filled);
    if (slot.refill) this.#stats.refillStarted(performance.now());
    return true;
  }

  /** A session became Ready: the oldest waiter gets it, else it stays in the ready set. */
  #created(slot: Slot, createMs: number): void {
    this.#backoff.succeed();
    this.#stats.recordCreated(createMs, slot.refill, performance.now());
    this.#slots.transition(slot, 'Ready');
    this.#emit('sessionReady', { ...this.#base(slot), createDurationMs: createMs });
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      const queueMs = performance.now() - waiter.enqueuedAt;
      waiter.resolve(this.#allocate(slot, waiter.identifier, waiter.acquireStartedAt, queueMs, true));
    } else {
      this.#starting.settle();
    }
    this.#refill();
  }

  #createFailed(slot: Slot, failure: SandpoolError): void {
    if (slot.refill) this.#stats.refillEnded(performance.now());
    this.#slots.transition(slot, 'Destroyed', 'failed');
    slot.destroyed = Promise.resolve();
    if (this.#closing !== undefined) return;
    const retryInMs = this.#backoff.fail();
    this.#stats.recordCreateFailure(failure);
    this.#emit('error', { ...this.#base(slot), operation: 'create', error: failure, retryInMs });
    // Waiters that no pending creation can serve get this error now rather than hanging.
    const unserved = this.#waiters.length - this.#slots.pending;
    if (unserved > 0) this.#waiters.rejectNewest(unserved, failure);
    this.#starting.settle(failure);
    this.#refill();
  }

  #destroy(slot: Slot, reason: DestroyReason, message?: string): Promise<void> {
    if (slot.destroyed !== undefined) return slot.destroyed;
    const previous = slot.state;
    this.#slots.transition(slot, 'Destroyed', reason);
    if (previous === 'Pending') {
      if (slot.refill) this.#stats.refillEnded(performance.now());
      // It leaves Pending now; the factory drops whatever the backend still returns for it.
      slot.createAbort.abort();
      slot.destroyed = Promise.resolve();
      return slot.destroyed;
    }
    const lifetimeMs = Date.now() - slot.createdAt;
    this.#emit('sessionDestroyed', { ...this.#base(slot), identifier: slot.identifier, reason, lifetimeMs, message });
    slot.destroyed = this.#factory.destroy(slot, reason);
    this.#refill();
    return slot.destroyed;
  }

  async #shutdown(): Promise<void> {
    this.#backoff.cancel();
    this.#refills.close();
    const closed = new PoolClosedError(`session pool "${this.#options.name}" was closed`);
    this.#waiters.rejectAll(closed);
    this.#starting.settle(closed);
    const live = this.#slots.liveSlots();
    const busy = live.filter((s) => (s.session?.executionsInFlight ?? 0) > 0).map((s) => s.session!.whenIdle());
    await settleWithin(busy, this.#options.closeGracePeriodSeconds * 1000);
    for (const slot of this.#slots.liveSlots()) void this.#destroy(slot, 'poolClosed');
    await this.#background.drain();
    this.#unsubscribeBudget();
    if (this.#options.ownsBackend) await this.backend.close();
  }
}
