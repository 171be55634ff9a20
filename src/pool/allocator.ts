/**
 * Gets sessions to identifiers. An acquire takes the oldest Ready session at once (a warm hit) or
 * waits FIFO until one becomes Ready (a cold miss); the refill creates sessions to cover the ready
 * target plus the waiters, within `maxConcurrentSessions`, the host memory budget, the refill
 * concurrency and the backoff of a failing backend. A machine-level restore gets a new session
 * of its own, made room for if needed. The pool owns everything else about a slot's life.
 */

import type { CreateOptions, DestroyReason, LostState, Restored, SessionSpec } from '../backend.js';
import { PoolClosedError, type PoolExhaustedError, type SandpoolError } from '../errors.js';
import type { SessionPoolEvents } from '../events.js';
import type { ResolvedPoolOptions } from '../options.js';
import type { Session } from '../session.js';
import type { AcquireOptions } from '../session-types.js';
import { Backoff } from './backoff.js';
import {
  backendFailingError,
  creationsWanted,
  exhaustedError,
  exhaustionReason,
  readyTarget,
  servableWaiters,
  soonestFreeSlotMs,
} from './capacity.js';
import { hostMemoryBudget } from './host-budget.js';
import { ArrivalRate } from './latency-window.js';
import type { SessionFactory } from './session-factory.js';
import type { Slot } from './slot.js';
import type { SlotTable } from './slot-table.js';
import { RefillScheduler } from './refill-scheduler.js';
import type { PoolStatistics } from './statistics.js';
import { StartWaiters, WaiterQueue, waitInQueue } from './waiters.js';

export interface AllocatorHost {
  options(): ResolvedPoolOptions;
  readonly backendName: string;
  readonly stats: PoolStatistics;
  readonly slots: SlotTable;
  readonly factory: SessionFactory;
  /** The pool is closed or closing: nothing is created or allocated any more. */
  closed(): boolean;
  /** The backend is prepared (the refill waits for it). */
  prepared(): boolean;
  emit<K extends keyof SessionPoolEvents>(event: K, payload: Parameters<SessionPoolEvents[K]>[0]): void;
  listening(event: keyof SessionPoolEvents): boolean;
  poolBase(): { pool: string; backend: string; at: number };
  base(slot: Slot): { pool: string; backend: string; sessionId: string; at: number };
  /** The public handle of a newly allocated slot. */
  newSession(slot: Slot): Session;
  /** A new session was handed to `identifier` (the pool binds what the acquire asked for). */
  claimed(session: Session, identifier: string): void;
  /** Arm the allocated slot's expiry timer. */
  arm(slot: Slot): void;
  /** When the allocated slot expires (cooldown or maxAlive), if it has a deadline. */
  expiresAt(slot: Slot): number | undefined;
  destroy(slot: Slot, reason: DestroyReason, message?: string): Promise<void>;
  /** The pool has executions in flight (the refill waits for them, briefly). */
  busy(): boolean;
}

export class Allocator {
  readonly waiters = new WaiterQueue();
  readonly backoff = new Backoff();
  readonly arrivals: ArrivalRate;
  /** `pool.start()` callers, waiting for the ready set to fill. */
  readonly starting: StartWaiters;
  /** start() resolved (or the pool was first used without it): creations from now on are refills. */
  filled = false;
  readonly #refills: RefillScheduler;

  constructor(private readonly host: AllocatorHost) {
    this.arrivals = new ArrivalRate(host.options().adaptiveReady?.windowSeconds ?? 10);
    this.starting = new StartWaiters(() => host.slots.ready >= this.readyTarget());
    this.#refills = new RefillScheduler({
      createOne: () => this.#createOne(),
      busy: () => host.busy(),
      urgent: () => this.waiters.length > 0,
    });
  }

  /** The pool's executions all settled: a refill waiting for that may go ahead. */
  idle(): void {
    this.#refills.idle();
  }

  readyTarget(): number {
    return readyTarget(this.host.options(), this.arrivals.perSecond(), this.host.slots.allocated);
  }

  /**
   * A Ready slot allocated to `identifier`, now or once one is created. `reuse`: the identifier's
   * existing Session (a resume), bound to the slot instead of a new one.
   */
  async take(identifier: string, options: AcquireOptions, startedAt: number, reuse?: Session): Promise<Slot> {
    const { slots } = this.host;
    this.filled = true;
    const warm = this.waiters.length === 0 ? slots.oldestReady() : undefined;
    if (warm !== undefined) {
      this.allocate(warm, identifier, startedAt, 0, false, reuse);
      return warm;
    }
    // Served in arrival order, this acquire gets a session only if a creation on the way (or
    // still within the limits) is left once every acquire queued ahead has had its own.
    const ahead = this.waiters.length;
    const servable = servableWaiters(slots.pending, this.#room());
    if (ahead >= servable) {
      if (options.wait === true) this.#exhausted(ahead - servable, true);
      else throw this.#exhausted(ahead - servable, false);
    } else if (ahead >= slots.pending && this.backoff.remaining() > 0) {
      throw backendFailingError(this.host.backendName, this.host.stats.lastError?.message, this.backoff.remaining());
    }
    const waiting = waitInQueue(this.waiters, {
      identifier,
      acquireStartedAt: startedAt,
      wait: options.wait === true,
      signal: options.signal,
      timeoutMs: options.timeoutMs,
      reuse,
    });
    this.refill();
    return await waiting;
  }

  /** Sessions the pool may still create: within maxConcurrentSessions and the host memory budget. */
  #room(): number {
    return this.host.slots.room(this.host.options().maxConcurrentSessions);
  }

  /**
   * An acquire finds every slot live or claimed: report it (`poolExhausted`), and unless it waits,
   * return the error it gets. `waitingForSlot` acquires queued ahead take the next slots to free.
   */
  #exhausted(waitingForSlot: number, waiting: true): undefined;
  #exhausted(waitingForSlot: number, waiting: false): PoolExhaustedError;
  #exhausted(waitingForSlot: number, waiting: boolean): PoolExhaustedError | undefined {
    const { slots } = this.host;
    const { name, maxConcurrentSessions } = this.host.options();
    const reason = exhaustionReason(slots.size, maxConcurrentSessions, this.#room());
    this.host.emit('poolExhausted', { ...this.host.poolBase(), maxConcurrentSessions, waiting, reason });
    if (waiting) return undefined;
    const deadlines: number[] = [];
    for (const slot of slots.allocatedSlots()) {
      const at = this.host.expiresAt(slot);
      if (at !== undefined) deadlines.push(at);
    }
    const retryAfterMs = soonestFreeSlotMs(deadlines, waitingForSlot, Date.now());
    return exhaustedError(reason, { name, maxConcurrentSessions }, hostMemoryBudget, retryAfterMs);
  }

  /**
   * The room can shrink under queued acquires (another pool took the host memory budget, or
   * `update()` lowered maxConcurrentSessions): those no creation can serve any more, and that did
   * not ask to wait, are refused now rather than left hanging until some session ends.
   */
  #refuseUnservable(): void {
    if (this.waiters.length === 0) return;
    const { removed, waitingForSlot } = this.waiters.removeUnservable(servableWaiters(this.host.slots.pending, this.#room()));
    for (const waiter of removed) waiter.reject(this.#exhausted(waitingForSlot, false));
  }

  /** Hand a Ready slot to `identifier` (with the identifier's existing Session when resuming). */
  allocate(slot: Slot, identifier: string, startedAt: number, queueMs: number, coldMiss: boolean, reuse?: Session): Session {
    this.host.slots.transition(slot, 'Allocated', identifier);
    const session = reuse ?? this.host.newSession(slot);
    slot.session = session;
    if (reuse === undefined) this.host.claimed(session, identifier);
    this.arrivals.record(slot.allocatedAt!);
    this.host.arm(slot);
    const latency = performance.now() - startedAt;
    this.host.stats.recordAllocation(latency, queueMs, coldMiss);
    // The warm path is microseconds long: build event payloads only for someone listening.
    if (this.host.listening('sessionAllocated')) {
      const event = { ...this.host.base(slot), identifier, allocationLatencyMs: latency, queueMs, coldMiss };
      this.host.emit('sessionAllocated', event);
    }
    this.refill();
    return session;
  }

  /**
   * Sessions may be wanted (something was taken, destroyed, failed or changed): creations start
   * off the caller's path, one per event-loop turn (refill-scheduler.ts).
   */
  refill(): void {
    if (this.host.closed() || !this.host.prepared()) return;
    this.#refills.request();
  }

  /** Start one creation if the ready set (plus waiters) is not covered, within the concurrency budget. */
  #createOne(): boolean {
    if (this.host.closed() || !this.host.prepared()) return false;
    this.#refuseUnservable();
    if (this.backoff.deferred(() => this.refill())) return false;
    const { slots, stats } = this.host;
    const options = this.host.options();
    const count = creationsWanted({
      target: this.readyTarget(),
      waiting: this.waiters.length,
      ready: slots.ready,
      pending: slots.pending,
      room: slots.room(options.maxConcurrentSessions),
      refillConcurrency: options.refillConcurrency,
    });
    if (count <= 0) return false;
    const slot = this.host.factory.start(this.waiters.length > slots.pending, this.filled);
    if (slot.refill) stats.refillStarted(performance.now());
    return true;
  }

  /** A new slot is being created: it is Pending (and reserves its memory) from now on. */
  pending(slot: Slot, onDemand: boolean): void {
    this.host.slots.transition(slot, 'Pending');
    this.host.emit('sessionPending', { ...this.host.base(slot), onDemand });
  }

  /** A Pending slot leaves without a session and without counting as a create failure (a failed restore). */
  dropped(slot: Slot): void {
    this.host.slots.transition(slot, 'Destroyed', 'failed');
    slot.destroyed = Promise.resolve();
    this.refill();
  }

  /** A session became Ready: the oldest waiter gets it, else it stays in the ready set. */
  created(slot: Slot, createMs: number): void {
    this.backoff.succeed();
    this.host.stats.recordCreated(createMs, slot.refill, performance.now());
    this.host.slots.transition(slot, 'Ready');
    this.host.emit('sessionReady', { ...this.host.base(slot), createDurationMs: createMs });
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      const queueMs = performance.now() - waiter.enqueuedAt;
      this.allocate(slot, waiter.identifier, waiter.acquireStartedAt, queueMs, true, waiter.reuse);
      waiter.resolve(slot);
    } else {
      this.starting.settle();
    }
    this.refill();
  }

  createFailed(slot: Slot, failure: SandpoolError): void {
    if (slot.refill) this.host.stats.refillEnded(performance.now());
    this.host.slots.transition(slot, 'Destroyed', 'failed');
    slot.destroyed = Promise.resolve();
    if (this.host.closed()) return;
    const retryInMs = this.backoff.fail();
    this.host.stats.recordCreateFailure(failure);
    this.host.emit('error', { ...this.host.base(slot), operation: 'create', error: failure, retryInMs });
    // Waiters that no pending creation can serve get this error now rather than hanging.
    const unserved = this.waiters.length - this.host.slots.pending;
    if (unserved > 0) this.waiters.rejectNewest(unserved, failure);
    this.starting.settle(failure);
    this.refill();
  }

  /** A new slot for `identifier` started by `restore` (a machine-level checkpoint), allocated at once. */
  async restored(
    identifier: string,
    reuse: Session | undefined,
    restore: (spec: SessionSpec, options: CreateOptions) => Promise<Restored>,
  ): Promise<{ slot: Slot; lost: readonly LostState[] }> {
    if (this.host.closed()) throw new PoolClosedError(`session pool "${this.host.options().name}" is closed`);
    const { slots } = this.host;
    const max = this.host.options().maxConcurrentSessions;
    // A restore needs room for one more session: a spare Ready one makes way if it must.
    if (slots.room(max) <= 0) {
      const spare = slots.newestReadyFirst()[0];
      if (spare === undefined) throw this.#exhausted(Math.max(0, this.waiters.length - slots.pending), false);
      await this.host.destroy(spare, 'stopped');
    }
    const started = performance.now();
    const { slot, lost } = await this.host.factory.restore(restore);
    if (slot.state !== 'Pending')
      throw new PoolClosedError(`session pool "${this.host.options().name}" was closed during the restore`);
    slots.transition(slot, 'Ready');
    this.allocate(slot, identifier, started, 0, false, reuse);
    return { slot, lost };
  }

  /** The pool closes: no more retries, every waiter and start() caller gets `closed`. */
  close(closed: PoolClosedError): void {
    this.backoff.cancel();
    this.#refills.close();
    this.waiters.rejectAll(closed);
    this.starting.settle(closed);
  }
}
