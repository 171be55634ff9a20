import { AbortedError, ErrorCode, SandpoolError } from '../errors.js';
import type { Session } from '../session.js';
import type { Slot } from './slot.js';

/** An acquire waiting for a session to become Ready. Served strictly in arrival order. */
export interface Waiter {
  readonly identifier: string;
  /** When acquire() was called, for allocation latency. */
  readonly acquireStartedAt: number;
  readonly enqueuedAt: number;
  /** The identifier's existing Session (a resume), to bind to the slot instead of a new one. */
  readonly reuse?: Session | undefined;
  /** Asked to wait for a slot to free (`acquire(id, { wait: true })`), not only for a creation on the way. */
  readonly wait: boolean;
  /** Called with the slot the pool allocated to this waiter's identifier. */
  resolve(slot: Slot): void;
  reject(error: SandpoolError): void;
}

export class WaiterQueue {
  #items: Waiter[] = [];

  get length(): number {
    return this.#items.length;
  }

  push(waiter: Waiter): void {
    this.#items.push(waiter);
  }

  shift(): Waiter | undefined {
    return this.#items.shift();
  }

  /** Remove a waiter that gave up (abort, timeout). Returns false if it was already served. */
  remove(waiter: Waiter): boolean {
    const index = this.#items.indexOf(waiter);
    if (index === -1) return false;
    this.#items.splice(index, 1);
    return true;
  }

  /**
   * Take out the waiters that the first `servable` sessions to come will not reach and that did
   * not ask to wait for a slot to free. Served in arrival order, the oldest `servable` get those
   * sessions; a waiter that asked to wait keeps its place (and its claim) wherever it stands.
   * Returns the waiters taken out, for the caller to reject, and how many stay beyond `servable`.
   */
  removeUnservable(servable: number): { removed: Waiter[]; waitingForSlot: number } {
    if (this.#items.length <= servable) return { removed: [], waitingForSlot: 0 };
    const removed = this.#items.slice(servable).filter((waiter) => !waiter.wait);
    if (removed.length > 0) this.#items = this.#items.filter((waiter, i) => i < servable || waiter.wait);
    return { removed, waitingForSlot: this.#items.length - servable };
  }

  /** Reject the newest `count` waiters (the oldest keep their place for the next Ready session). */
  rejectNewest(count: number, error: SandpoolError): void {
    const rejected = this.#items.splice(Math.max(0, this.#items.length - count), count);
    for (const waiter of rejected) waiter.reject(error);
  }

  /** Swap the queue out first, then reject, so a rejection handler cannot re-enter a half-drained queue. */
  rejectAll(error: SandpoolError): void {
    const all = this.#items;
    this.#items = [];
    for (const waiter of all) waiter.reject(error);
  }
}

export interface WaitOptions {
  readonly identifier: string;
  readonly acquireStartedAt: number;
  readonly wait: boolean;
  readonly signal?: AbortSignal | undefined;
  readonly timeoutMs?: number | undefined;
  readonly reuse?: Session | undefined;
}

/**
 * Queue an acquire until the pool hands it a session. An abort or a timeout removes the waiter,
 * and every listener and timer is released whichever way the wait ends.
 */
export function waitInQueue(queue: WaiterQueue, options: WaitOptions): Promise<Slot> {
  return new Promise<Slot>((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new AbortedError('acquire was aborted before it started'));
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const cleanup = () => {
      if (timer !== undefined) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    };
    const giveUp = (error: SandpoolError) => {
      if (!queue.remove(waiter)) return;
      cleanup();
      reject(error);
    };
    const onAbort = () => giveUp(new AbortedError('acquire was aborted while waiting for a session'));
    const waiter: Waiter = {
      identifier: options.identifier,
      acquireStartedAt: options.acquireStartedAt,
      enqueuedAt: performance.now(),
      reuse: options.reuse,
      wait: options.wait,
      resolve: (slot) => {
        cleanup();
        resolve(slot);
      },
      reject: (error) => {
        cleanup();
        reject(error);
      },
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.timeoutMs !== undefined) {
      timer = setTimeout(
        () => giveUp(new SandpoolError(ErrorCode.ACQUIRE_TIMEOUT, `no session became available within ${options.timeoutMs} ms`)),
        options.timeoutMs,
      );
    }
    queue.push(waiter);
  });
}

/** Callers of `pool.start()` waiting for the ready set to fill; all settle together. */
export class StartWaiters {
  #waiting: { resolve: () => void; reject: (error: SandpoolError) => void }[] = [];

  /** @param satisfied whether the ready set is full enough for `start()` to resolve */
  constructor(readonly satisfied: () => boolean) {}

  /** Resolves at once when satisfied, else when `settle` finds it satisfied (or rejects with its error). */
  wait(): Promise<void> {
    if (this.satisfied()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  /** Resolve everyone once satisfied, or reject everyone with `error`; otherwise keep waiting. */
  settle(error?: SandpoolError): void {
    if (this.#waiting.length === 0) return;
    if (error === undefined && !this.satisfied()) return;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const w of waiting) error === undefined ? w.resolve() : w.reject(error);
  }
}
