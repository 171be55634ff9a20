import { randomBytes } from 'node:crypto';

import { EventEmitter } from 'eventemitter3';

import type { Backend, DestroyReason, SessionExit } from './backend.js';
import { azurePropertiesToOptions, type AzurePoolOverrides } from './azure-properties.js';
import { BackendError, ErrorCode, PoolClosedError, PoolExhaustedError, type SandpoolError, toSandpoolError } from './errors.js';
import type { SessionPoolEvents } from './events.js';
import { assertIdentifier, generateIdentifier } from './identifier.js';
import { resolveCustomContainer, resolvePoolOptions, type ResolvedPoolOptions, type SessionPoolOptions } from './options.js';
import { applyPoolUpdate, type PoolUpdate } from './pool/pool-update.js';
import { createSessionHost } from './pool/session-operations.js';
import { Backoff } from './pool/backoff.js';
import { armExpiry, expiryOf } from './pool/expiry.js';
import { hostMemoryBudget } from './pool/host-budget.js';
import { OnceAsync, settleWithin } from './pool/once-async.js';
import { ArrivalRate } from './pool/latency-window.js';
import { SessionFactory } from './pool/session-factory.js';
import type { Slot } from './pool/slot.js';
import { PoolStatistics } from './pool/statistics.js';
import { WaiterQueue, waitInQueue } from './pool/waiters.js';
import { Session, type SessionHost } from './session.js';
import type { PoolStats, SessionInfo } from './session-types.js';

export interface AcquireOptions {
  /** At maxConcurrentSessions, wait for a free slot instead of rejecting with PoolExhaustedError. */
  readonly wait?: boolean | undefined;
  /** Give up waiting (rejects with AbortedError). */
  readonly signal?: AbortSignal | undefined;
  /** Give up waiting after this long (rejects with code SANDPOOL_ACQUIRE_TIMEOUT). */
  readonly timeoutMs?: number | undefined;
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
  readonly #host: SessionHost;
  readonly #stats = new PoolStatistics();
  readonly #arrivals: ArrivalRate;
  readonly #slots = new Map<string, Slot>();
  /** Ready, unallocated slots in creation order (a Set: O(1) take-oldest and removal). */
  readonly #ready = new Set<Slot>();
  readonly #byIdentifier = new Map<string, Slot>();
  readonly #acquiring = new Map<string, Promise<Session>>();
  readonly #waiters = new WaiterQueue();
  readonly #background = new Set<Promise<unknown>>();
  #pending = 0;
  #allocated = 0;
  readonly #preparation = new OnceAsync(() => this.#prepareBackend());
  readonly #backoff = new Backoff();
  readonly #factory: SessionFactory;
  /** Memory each session reserves from the host budget (0 for in-process backends). */
  readonly #reserveMb: number;
  readonly #unsubscribeBudget: () => void;
  #closing: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #startWatchers: { resolve: () => void; reject: (error: SandpoolError) => void }[] = [];

  /** @throws {InvalidOptionsError} naming every invalid option */
  constructor(options: SessionPoolOptions) {
    super();
    this.#options = resolvePoolOptions(options);
    this.backend = this.#options.backend;
    // What a session really gets: a custom container's template memory wins over the pool limit.
    this.#reserveMb = this.backend.capabilities.inProcess
      ? 0
      : (resolveCustomContainer(this.#options)?.memoryMb ?? this.#options.limits.memoryMb);
    this.#unsubscribeBudget = hostMemoryBudget.subscribe(() => this.#refill());
    this.#arrivals = new ArrivalRate(this.#options.adaptiveReady?.windowSeconds ?? 10);
    this.#factory = new SessionFactory(this.backend, (sessionId) => ({ sessionId, ...this.#specBase() }), {
      pending: (slot, onDemand) => {
        this.#slots.set(slot.id, slot);
        this.#pending += 1;
        hostMemoryBudget.reserve(this.#reserveMb);
        this.#emit('sessionPending', { ...this.#base(slot), onDemand });
      },
      created: (slot, createMs) => this.#created(slot, createMs),
      failed: (slot, failure) => this.#createFailed(slot, failure),
      exited: (slot, exit) => this.#onExit(slot, exit),
      track: (work) => this.#track(work),
    });

    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const pool = this;
    this.#host = createSessionHost({
      backend: this.backend,
      get options() {
        return pool.#options;
      },
      emit: (event, payload) => this.#emit(event, payload),
      listening: (event) => this.listenerCount(event) > 0,
      touch: (slot) => {
        slot.lastAccessedAt = Date.now();
      },
      executionsSettled: (slot) => this.#checkExpiry(slot),
      destroy: (slot, reason, message) => this.#destroy(slot, reason, message),
      expiresAt: (slot) => this.#expiresAt(slot),
      recordExecution: (slot, durationMs) => {
        this.#stats.executions += 1;
        slot.executionCount += 1;
        if (slot.executionCount === 1) this.#stats.firstExecutionMs.add(durationMs);
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
    await this.#ensurePrepared();
    this.#refill();
    if (this.#startSatisfied()) return;
    await new Promise<void>((resolve, reject) => this.#startWatchers.push({ resolve, reject }));
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
    try {
      this.#assertOpen();
      assertIdentifier(identifier);
    } catch (error) {
      return Promise.reject(error);
    }
    const existing = this.#byIdentifier.get(identifier);
    if (existing !== undefined) {
      existing.lastAccessedAt = Date.now();
      return Promise.resolve(existing.handleObject as Session);
    }
    const inFlight = this.#acquiring.get(identifier);
    if (inFlight !== undefined) return inFlight;
    const acquiring = this.#acquireNew(identifier, options, performance.now());
    this.#acquiring.set(identifier, acquiring);
    const forget = () => this.#acquiring.delete(identifier);
    acquiring.then(forget, forget);
    return acquiring;
  }

  /** The live session of `identifier`, or undefined. Never creates one. */
  get(identifier: string): Session | undefined {
    return this.#byIdentifier.get(identifier)?.handleObject as Session | undefined;
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
    const slot = this.#byIdentifier.get(identifier);
    if (slot === undefined) return false;
    await this.#destroy(slot, 'stopped');
    return true;
  }

  /** A snapshot of every live session (pending, ready and allocated). */
  sessions(): SessionInfo[] {
    return [...this.#slots.values()].map((slot) => this.#host.info(slot));
  }

  stats(): PoolStats {
    return this.#stats.snapshot({
      name: this.#options.name,
      backend: this.backend.name,
      closed: this.closed,
      pending: this.#pending,
      ready: this.#ready.size,
      allocated: this.#allocated,
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
    for (const slot of [...this.#ready].reverse()) {
      if (this.#ready.size <= this.#readyTarget()) break;
      void this.#destroy(slot, 'stopped');
    }
    for (const slot of this.#byIdentifier.values()) this.#armExpiry(slot);
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

  #base(slot: Slot) {
    return { pool: this.#options.name, backend: this.backend.name, sessionId: slot.id, at: Date.now() };
  }

  #assertOpen(): void {
    if (this.#closing !== undefined) throw new PoolClosedError(`session pool "${this.#options.name}" is closed`);
  }

  #ensurePrepared(): Promise<void> {
    return this.#preparation.run();
  }

  async #prepareBackend(): Promise<void> {
    try {
      await this.backend.prepare?.({ ...this.#specBase(), signal: undefined });
    } catch (error) {
      const failure = toSandpoolError(error, `backend "${this.backend.name}" is not usable`);
      this.#emit('error', { pool: this.name, backend: this.backend.name, at: Date.now(), operation: 'prepare', error: failure });
      throw failure;
    }
  }

  #specBase() {
    const o = this.#options;
    return {
      poolName: o.name,
      ownerId: this.ownerId,
      containerType: o.containerType,
      limits: o.limits,
      network: o.network,
      customContainer: resolveCustomContainer(o),
    };
  }

  async #acquireNew(identifier: string, options: AcquireOptions, startedAt: number): Promise<Session> {
    await this.#ensurePrepared();
    this.#assertOpen();
    if (this.#ready.size > 0 && this.#waiters.length === 0) {
      const slot = this.#ready.values().next().value!;
      this.#ready.delete(slot);
      this.#allocate(slot, identifier, startedAt, 0, false);
      return slot.handleObject as Session;
    }
    const incoming = this.#pending - this.#waiters.length;
    const exhausted = incoming <= 0 && this.#room() <= 0;
    if (exhausted) {
      const byBudget = this.#slots.size < this.#options.maxConcurrentSessions;
      this.#emit('poolExhausted', {
        pool: this.name,
        backend: this.backend.name,
        at: Date.now(),
        maxConcurrentSessions: this.#options.maxConcurrentSessions,
        waiting: options.wait === true,
        reason: byBudget ? 'hostMemoryBudget' : 'maxConcurrentSessions',
      });
      if (options.wait !== true) {
        throw new PoolExhaustedError(
          byBudget
            ? `the host memory budget is spent (${hostMemoryBudget.reservedMb} of ${hostMemoryBudget.capacityMb} MiB ` +
                'reserved by sessions); stop sessions or acquire with { wait: true }'
            : `session pool "${this.name}" is at maxConcurrentSessions (${this.#options.maxConcurrentSessions}); ` +
                'stop a session, raise the limit, or acquire with { wait: true }',
        );
      }
    } else if (incoming <= 0 && this.#backoff.remaining() > 0) {
      const last = this.#stats.lastError;
      throw new BackendError(
        `backend "${this.backend.name}" is failing to create sessions (${last?.message ?? 'unknown error'}); ` +
          `retrying in ${this.#backoff.remaining()} ms`,
        { code: ErrorCode.BACKEND_UNAVAILABLE },
      );
    }
    const waiting = waitInQueue(this.#waiters, {
      identifier,
      acquireStartedAt: startedAt,
      patient: exhausted,
      signal: options.signal,
      timeoutMs: options.timeoutMs,
    });
    this.#refill();
    return (await waiting).handleObject as Session;
  }

  #allocate(slot: Slot, identifier: string, startedAt: number, queueMs: number, coldMiss: boolean): void {
    const now = Date.now();
    slot.state = 'Allocated';
    slot.identifier = identifier;
    slot.allocatedAt = now;
    slot.lastAccessedAt = now;
    slot.handleObject = new Session(this.#host, slot);
    this.#allocated += 1;
    this.#byIdentifier.set(identifier, slot);
    this.#arrivals.record(now);
    this.#armExpiry(slot);
    const latency = performance.now() - startedAt;
    this.#stats.recordAllocation(latency, queueMs, coldMiss);
    // The warm path is microseconds long: build event payloads only for someone listening.
    if (this.listenerCount('sessionAllocated') > 0) {
      this.#emit('sessionAllocated', { ...this.#base(slot), identifier, allocationLatencyMs: latency, queueMs, coldMiss });
    }
    this.#refill();
  }

  /** A session became Ready: the oldest waiter gets it, else it joins the ready set. */
  #offer(slot: Slot): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      const queueMs = performance.now() - waiter.enqueuedAt;
      this.#allocate(slot, waiter.identifier, waiter.acquireStartedAt, queueMs, true);
      waiter.resolve(slot);
      return;
    }
    this.#ready.add(slot);
    this.#checkStartWatchers();
  }

  #readyTarget(): number {
    const { readySessionInstances, maxConcurrentSessions, adaptiveReady } = this.#options;
    let target = readySessionInstances;
    if (adaptiveReady !== undefined) {
      const demand = Math.ceil(this.#arrivals.perSecond() * adaptiveReady.coverSeconds);
      target = Math.max(target, Math.min(demand, adaptiveReady.maxReadySessionInstances));
    }
    return Math.min(target, Math.max(0, maxConcurrentSessions - this.#allocated));
  }

  #startSatisfied(): boolean {
    return this.#ready.size >= this.#readyTarget();
  }

  #checkStartWatchers(error?: SandpoolError): void {
    if (this.#startWatchers.length === 0) return;
    if (error === undefined && !this.#startSatisfied()) return;
    const watchers = this.#startWatchers;
    this.#startWatchers = [];
    for (const w of watchers) error === undefined ? w.resolve() : w.reject(error);
  }

  /** Create sessions until the ready set (plus waiters) is covered, within the concurrency budget. */
  #refill(): void {
    if (this.#closing !== undefined || !this.#preparation.done) return;
    const wait = this.#backoff.remaining();
    if (wait > 0) {
      this.#retryTimer ??= setTimeout(() => {
        this.#retryTimer = undefined;
        this.#refill();
      }, wait).unref();
      return;
    }
    const wanted = this.#readyTarget() + this.#waiters.length - this.#ready.size - this.#pending;
    const room = this.#room();
    const budget = this.#options.refillConcurrency - this.#pending;
    const count = Math.min(wanted, room, budget);
    for (let i = 0; i < count; i += 1) this.#factory.start(this.#waiters.length > this.#pending);
  }

  #created(slot: Slot, createMs: number): void {
    this.#pending -= 1;
    this.#backoff.succeed();
    this.#stats.created += 1;
    this.#stats.createMs.add(createMs);
    slot.state = 'Ready';
    slot.readyAt = Date.now();
    this.#emit('sessionReady', { ...this.#base(slot), createDurationMs: createMs });
    this.#offer(slot);
    this.#refill();
  }

  /** Sessions that may still be created: within maxConcurrentSessions and the host memory budget. */
  #room(): number {
    const room = this.#options.maxConcurrentSessions - this.#slots.size;
    return this.#reserveMb === 0 ? room : Math.min(room, hostMemoryBudget.room(this.#reserveMb));
  }

  #createFailed(slot: Slot, failure: SandpoolError): void {
    this.#pending -= 1;
    slot.state = 'Destroyed';
    this.#slots.delete(slot.id);
    hostMemoryBudget.release(this.#reserveMb);
    if (this.#closing !== undefined) return;
    const retryInMs = this.#backoff.fail();
    this.#stats.recordCreateFailure(failure);
    this.#emit('error', { ...this.#base(slot), operation: 'create', error: failure, retryInMs });
    // Waiters that no pending creation can serve get this error now rather than hanging.
    const unserved = this.#waiters.length - this.#pending;
    if (unserved > 0) this.#waiters.rejectNewest(unserved, failure);
    this.#checkStartWatchers(failure);
    this.#refill();
  }

  #onExit(slot: Slot, exit: SessionExit): void {
    if (slot.state === 'Destroyed' || slot.state === 'Pending') return;
    void this.#destroy(slot, exit.reason, exit.message);
  }

  #expiresAt(slot: Slot): number | undefined {
    return slot.state === 'Allocated' ? expiryOf(this.#options, slot).at : undefined;
  }

  #armExpiry(slot: Slot): void {
    armExpiry(slot, this.#options, (due) => this.#checkExpiry(due));
  }

  /** Reap an expired session, unless it is running code: then reap it when the code finishes. */
  #checkExpiry(slot: Slot): void {
    if (slot.state !== 'Allocated') return;
    const at = this.#expiresAt(slot);
    if (at === undefined) return;
    if (Date.now() < at) {
      if (slot.expiryTimer === undefined) this.#armExpiry(slot);
      return;
    }
    if (slot.executions > 0) return; // executionsSettled() calls back here
    void this.#destroy(slot, expiryOf(this.#options, slot).reason);
  }

  #destroy(slot: Slot, reason: DestroyReason, message?: string): Promise<void> {
    if (slot.destroyed !== undefined) return slot.destroyed;
    const previous = slot.state;
    slot.state = 'Destroyed';
    if (slot.expiryTimer !== undefined) clearTimeout(slot.expiryTimer);
    slot.expiryTimer = undefined;
    this.#slots.delete(slot.id);
    hostMemoryBudget.release(this.#reserveMb);
    if (previous === 'Pending') {
      // It leaves Pending now; the factory drops whatever the backend still returns for it.
      this.#pending -= 1;
      slot.createAbort.abort();
      slot.destroyed = Promise.resolve();
      return slot.destroyed;
    }
    if (previous === 'Ready') {
      this.#ready.delete(slot);
    } else if (previous === 'Allocated') {
      this.#allocated -= 1;
      if (slot.identifier !== undefined && this.#byIdentifier.get(slot.identifier) === slot) {
        this.#byIdentifier.delete(slot.identifier);
      }
    }
    this.#stats.recordDestroy(reason);
    this.#emit('sessionDestroyed', {
      ...this.#base(slot),
      identifier: slot.identifier,
      reason,
      lifetimeMs: Date.now() - slot.createdAt,
      message,
    });
    const handle = slot.handle!;
    slot.destroyed = this.backend.destroy(handle, { reason }).catch((error: unknown) => {
      const failure = toSandpoolError(error, 'destroying a session failed');
      this.#emit('error', {
        pool: this.name,
        backend: this.backend.name,
        at: Date.now(),
        operation: 'destroy',
        error: failure,
        sessionId: slot.id,
      });
    });
    this.#track(slot.destroyed);
    this.#refill();
    return slot.destroyed;
  }

  #track(work: Promise<unknown>): void {
    this.#background.add(work);
    void work.finally(() => this.#background.delete(work));
  }

  async #shutdown(): Promise<void> {
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const closed = new PoolClosedError(`session pool "${this.#options.name}" was closed`);
    this.#waiters.rejectAll(closed);
    this.#checkStartWatchers(closed);
    const busy = [...this.#slots.values()].filter((s) => s.executions > 0).map((s) => s.tail);
    await settleWithin(busy, this.#options.closeGracePeriodSeconds * 1000);
    for (const slot of [...this.#slots.values()]) void this.#destroy(slot, 'poolClosed');
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
    this.#unsubscribeBudget();
    if (this.#options.ownsBackend) await this.backend.close();
  }
}
