import { totalmem } from 'node:os';

import { resolveCustomContainer, type ResolvedPoolOptions } from '../options.js';

/**
 * A process-wide cap on the memory that out-of-process sessions (containers, VMs) may reserve,
 * across every pool: by default 80% of the host's RAM, or `SANDPOOL_HOST_MEMORY_BUDGET_MB`.
 * Each such session reserves its `limits.memoryMb` while it lives, so many pools together can never
 * promise the host more memory than it has. In-process backends (isolates) are not counted: their
 * memory limit is a ceiling on the heap they grow, not memory they hold.
 */
export class HostMemoryBudget {
  #capacityMb: number;
  #reservedMb = 0;
  readonly #listeners = new Set<() => void>();

  constructor(capacityMb: number) {
    this.#capacityMb = capacityMb;
  }

  get capacityMb(): number {
    return this.#capacityMb;
  }

  get reservedMb(): number {
    return this.#reservedMb;
  }

  /** Change the capacity (for example to leave room for other services on the host). */
  setCapacityMb(capacityMb: number): void {
    if (!Number.isFinite(capacityMb) || capacityMb < 0) throw new RangeError('capacityMb must be a non-negative number');
    this.#capacityMb = capacityMb;
    this.#notify();
  }

  /** How many more sessions of `memoryMb` fit now. */
  room(memoryMb: number): number {
    return Math.max(0, Math.floor((this.#capacityMb - this.#reservedMb) / memoryMb));
  }

  reserve(memoryMb: number): void {
    this.#reservedMb += memoryMb;
  }

  release(memoryMb: number): void {
    this.#reservedMb = Math.max(0, this.#reservedMb - memoryMb);
    this.#notify();
  }

  /** Called (asynchronously) whenever memory is released, so waiting pools can refill. */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #notify(): void {
    if (this.#listeners.size === 0) return;
    queueMicrotask(() => {
      for (const listener of [...this.#listeners]) listener();
    });
  }
}

const configured = Number(process.env['SANDPOOL_HOST_MEMORY_BUDGET_MB']);
/** The budget shared by every pool in this process. */
export const hostMemoryBudget = new HostMemoryBudget(
  Number.isFinite(configured) && configured > 0 ? configured : Math.floor((totalmem() / 1024 / 1024) * 0.8),
);

/**
 * What each session of a pool reserves from the budget: 0 for in-process backends, else the
 * memory a session really gets (a custom container's template memory wins over the pool limit).
 */
export function reservationPerSession(options: ResolvedPoolOptions): number {
  if (options.backend.capabilities.inProcess) return 0;
  return resolveCustomContainer(options)?.memoryMb ?? options.limits.memoryMb;
}
