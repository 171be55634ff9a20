import type { DestroyReason } from '../backend.js';
import type { SessionState } from '../session-types.js';
import type { HostMemoryBudget } from './host-budget.js';
import type { Slot } from './slot.js';
import type { PoolStatistics } from './statistics.js';

/** Where a slot may go from each state; `new` is a slot the table does not know yet. */
const NEXT: Record<SessionState | 'new', readonly SessionState[]> = {
  // A paused session found on disk at start is a new slot that is Paused from the outset.
  new: ['Pending', 'Paused'],
  Pending: ['Ready', 'Destroyed'],
  Ready: ['Allocated', 'Destroyed'],
  Allocated: ['Paused', 'Destroyed'],
  Paused: ['Destroyed'],
  Destroyed: [],
};

/**
 * Why a slot leaves the table: a destroy reason, counted in the statistics, or `superseded` (a
 * paused slot whose session now lives in another slot, or failed to: it was reported there).
 */
export type LeaveReason = DestroyReason | 'superseded';

/**
 * Every live slot of one pool, grouped by state. `transition` is the only place a slot's state
 * changes, and it keeps everything that depends on the state in step: the pending, ready and
 * allocated sets (so every count is a set's size, never a counter kept by hand), the identifier
 * index, the host-memory reservation, the expiry timer and the destroyed-by-reason counters.
 */
export class SlotTable {
  readonly #live = new Map<string, Slot>();
  readonly #pending = new Set<Slot>();
  /** In the order they became Ready: the oldest is handed out first. */
  readonly #ready = new Set<Slot>();
  readonly #allocated = new Set<Slot>();
  readonly #byIdentifier = new Map<string, Slot>();
  /** Paused slots by identifier: they hold no backend session, no memory and no room. */
  readonly #paused = new Map<string, Slot>();

  /**
   * @param reserveMb what each live slot reserves from `budget` (0 for in-process backends)
   */
  constructor(
    private readonly stats: PoolStatistics,
    private readonly budget: HostMemoryBudget,
    private readonly reserveMb: number,
  ) {}

  get paused(): number {
    return this.#paused.size;
  }

  /** The paused slot of `identifier`, if any. */
  pausedTo(identifier: string): Slot | undefined {
    return this.#paused.get(identifier);
  }

  pausedSlots(): Slot[] {
    return [...this.#paused.values()];
  }

  /** Live slots: pending + ready + allocated (paused ones hold nothing live). */
  get size(): number {
    return this.#live.size;
  }

  get pending(): number {
    return this.#pending.size;
  }

  get ready(): number {
    return this.#ready.size;
  }

  get allocated(): number {
    return this.#allocated.size;
  }

  /** The Ready slot that has waited longest, if any. */
  oldestReady(): Slot | undefined {
    return this.#ready.values().next().value;
  }

  /** Ready slots, newest first (the first to go when the ready set shrinks). */
  newestReadyFirst(): Slot[] {
    return [...this.#ready].reverse();
  }

  /** The slot allocated to `identifier`, if any. */
  allocatedTo(identifier: string): Slot | undefined {
    return this.#byIdentifier.get(identifier);
  }

  allocatedSlots(): IterableIterator<Slot> {
    return this.#allocated.values();
  }

  liveSlots(): Slot[] {
    return [...this.#live.values()];
  }

  /** Slots that may still be created: within `maxConcurrentSessions` and the host memory budget. */
  room(maxConcurrentSessions: number): number {
    const room = maxConcurrentSessions - this.#live.size;
    return this.reserveMb === 0 ? room : Math.min(room, this.budget.room(this.reserveMb));
  }

  /** Register a new slot: it is Pending and reserves its memory. */
  transition(slot: Slot, to: 'Pending'): void;
  /** The backend created the session. */
  transition(slot: Slot, to: 'Ready'): void;
  /** Hand the session to `identifier`. */
  transition(slot: Slot, to: 'Allocated', identifier: string): void;
  /** The session's state is on disk: it leaves the live set and gives back its memory and room. */
  transition(slot: Slot, to: 'Paused', identifier?: string): void;
  /** The slot leaves the pool; `reason` is counted for sessions that were created. */
  transition(slot: Slot, to: 'Destroyed', reason: LeaveReason): void;
  transition(slot: Slot, to: SessionState, detail?: string): void {
    const known = this.#live.get(slot.id) === slot || (slot.state === 'Paused' && this.#paused.get(slot.identifier!) === slot);
    const from = known ? slot.state : slot.state === 'Destroyed' ? 'Destroyed' : 'new';
    if (!NEXT[from].includes(to)) throw new Error(`internal error: slot ${slot.id} cannot go from ${from} to ${to}`);
    if (from === 'Pending') this.#pending.delete(slot);
    else if (from === 'Ready') this.#ready.delete(slot);
    else if (from === 'Allocated') {
      this.#allocated.delete(slot);
      if (this.#byIdentifier.get(slot.identifier!) === slot) this.#byIdentifier.delete(slot.identifier!);
    } else if (from === 'Paused') this.#paused.delete(slot.identifier!);
    slot.state = to;
    const now = Date.now();
    switch (to) {
      case 'Pending':
        this.#live.set(slot.id, slot);
        this.#pending.add(slot);
        this.budget.reserve(this.reserveMb);
        break;
      case 'Ready':
        slot.readyAt = now;
        this.#ready.add(slot);
        this.budget.settle(this.reserveMb);
        break;
      case 'Allocated':
        slot.identifier = detail;
        slot.allocatedAt = now;
        slot.lastAccessedAt = now;
        this.#allocated.add(slot);
        this.#byIdentifier.set(detail!, slot);
        break;
      case 'Paused':
        if (from === 'new') slot.identifier = detail;
        this.#leaveLive(slot, from);
        this.#paused.set(slot.identifier!, slot);
        break;
      case 'Destroyed':
        this.#leaveLive(slot, from);
        if (slot.paused?.timer !== undefined) clearTimeout(slot.paused.timer);
        if (from !== 'Pending' && detail !== 'superseded') this.stats.recordDestroy(detail as DestroyReason);
        break;
    }
  }

  /** Stop the expiry timer; a slot that was live gives back its room and memory. */
  #leaveLive(slot: Slot, from: SessionState | 'new'): void {
    if (slot.expiryTimer !== undefined) clearTimeout(slot.expiryTimer);
    slot.expiryTimer = undefined;
    if (from === 'Pending' || from === 'Ready' || from === 'Allocated') {
      this.#live.delete(slot.id);
      // A session that was created gave its reservation over to measured use when it became Ready.
      this.budget.release(this.reserveMb, from !== 'Pending');
    }
  }
}
