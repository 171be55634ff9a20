import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';

import { resolveCustomContainer, type ResolvedPoolOptions } from '../options.js';

/** How the budget decides whether another out-of-process session may start. */
export type HostBudgetMode = 'measured' | 'reserved';

const MiB = 1024 * 1024;

/** MemAvailable in MiB from /proc/meminfo, or undefined where there is none (not Linux). */
export function memAvailableMb(): number | undefined {
  try {
    const match = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    return match === null ? undefined : Number(match[1]) / 1024;
  } catch {
    return undefined;
  }
}

/**
 * A process-wide guard on the memory that out-of-process sessions (containers, VMs) use, across
 * every pool. Two modes:
 *
 * - **measured** (the default where /proc/meminfo exists): a session may start while the host's
 *   available memory, minus the limits of the sessions still being created, stays above a floor
 *   kept free (10% of RAM, at least 1 GiB; `SANDPOOL_HOST_MEMORY_FLOOR_MB`). Once a session is
 *   Ready, what it really uses is in MemAvailable, so an idle session that uses 10 MiB costs 10
 *   MiB, not its 256 MiB limit. What protects the host then: each session's own hard limit (memory
 *   cgroup, guest RAM), the floor as headroom for sessions that grow, sessions' kernels being the
 *   OOM killer's first choice (oom_score_adj 1000: a memory crisis costs a kernel restart, never
 *   the host or the embedding process), and the cooldown that reaps idle sessions. Sessions that
 *   all grow to their limits at once can still exhaust the host's RAM: that is the overcommit this
 *   mode accepts, like a scheduler that places by use and limits by limit.
 * - **reserved** (with `SANDPOOL_HOST_MEMORY_BUDGET_MB`, or after `setCapacityMb`): each session
 *   reserves its full limit while it lives, and the sum never exceeds the capacity (80% of RAM
 *   unless configured). Nothing is overcommitted; far fewer sessions fit.
 *
 * In-process backends (isolates) are not counted: their limit is a ceiling on a heap they grow.
 */
export class HostMemoryBudget {
  #mode: HostBudgetMode;
  #capacityMb: number;
  #floorMb: number;
  /** Limits of the sessions being created, and of the sessions that are Ready or allocated. */
  #creatingMb = 0;
  #settledMb = 0;
  readonly #available: () => number | undefined;
  #availableCache: { at: number; mb: number | undefined } | undefined;
  #recheck: NodeJS.Timeout | undefined;
  readonly #listeners = new Set<() => void>();

  constructor(
    capacityMb: number,
    options: { mode?: HostBudgetMode; floorMb?: number; available?: () => number | undefined } = {},
  ) {
    this.#capacityMb = capacityMb;
    this.#available = options.available ?? memAvailableMb;
    this.#mode = options.mode ?? (this.#available() === undefined ? 'reserved' : 'measured');
    this.#floorMb = options.floorMb ?? Math.max(1024, Math.floor((totalmem() / MiB) * 0.1));
  }

  get mode(): HostBudgetMode {
    return this.#mode;
  }

  /** Reserved mode: the most that live sessions may reserve. */
  get capacityMb(): number {
    return this.#capacityMb;
  }

  /** Measured mode: the available memory always left free. */
  get floorMb(): number {
    return this.#floorMb;
  }

  /** The limits of every live session (what reserved mode counts). */
  get reservedMb(): number {
    return this.#creatingMb + this.#settledMb;
  }

  /** Available host memory (MiB) as the measured mode sees it; undefined where unknown. */
  get availableMb(): number | undefined {
    const now = performance.now();
    // Read at most every 50 ms: room() runs on every refill decision of out-of-process pools.
    if (this.#availableCache === undefined || now - this.#availableCache.at > 50) {
      this.#availableCache = { at: now, mb: this.#available() };
    }
    return this.#availableCache.mb;
  }

  /** Reserved mode with this capacity (for example to leave room for other services on the host). */
  setCapacityMb(capacityMb: number): void {
    if (!Number.isFinite(capacityMb) || capacityMb < 0) throw new RangeError('capacityMb must be a non-negative number');
    this.#capacityMb = capacityMb;
    this.#mode = 'reserved';
    this.#notify();
  }

  /** Measured mode, keeping `floorMb` of the host's memory available. */
  useMeasured(floorMb = this.#floorMb): void {
    if (!Number.isFinite(floorMb) || floorMb < 0) throw new RangeError('floorMb must be a non-negative number');
    if (this.#available() === undefined) throw new RangeError('measured mode needs /proc/meminfo (Linux)');
    this.#floorMb = floorMb;
    this.#mode = 'measured';
    this.#availableCache = undefined;
    this.#notify();
  }

  /** How many more sessions of `memoryMb` may start now. */
  room(memoryMb: number): number {
    if (this.#mode === 'reserved') return Math.max(0, Math.floor((this.#capacityMb - this.reservedMb) / memoryMb));
    const free = (this.availableMb ?? 0) - this.#floorMb - this.#creatingMb;
    const room = Math.max(0, Math.floor(free / memoryMb));
    // Memory may come back without any session of ours ending (another process exits, a session
    // shrinks): waiting pools look again a second later.
    if (room === 0 && this.#listeners.size > 0) {
      this.#recheck ??= setTimeout(() => {
        this.#recheck = undefined;
        this.#availableCache = undefined;
        this.#notify();
      }, 1000).unref();
    }
    return room;
  }

  /** A session of `memoryMb` starts being created. */
  reserve(memoryMb: number): void {
    this.#creatingMb += memoryMb;
  }

  /** That session is Ready: in measured mode its real use is in MemAvailable from now on. */
  settle(memoryMb: number): void {
    this.#creatingMb = Math.max(0, this.#creatingMb - memoryMb);
    this.#settledMb += memoryMb;
  }

  /** A session ends. `settled`: it had become Ready; otherwise its creation failed or was dropped. */
  release(memoryMb: number, settled = false): void {
    if (settled) this.#settledMb = Math.max(0, this.#settledMb - memoryMb);
    else this.#creatingMb = Math.max(0, this.#creatingMb - memoryMb);
    this.#availableCache = undefined;
    this.#notify();
  }

  /** Called (asynchronously) whenever memory may have been released, so waiting pools can refill. */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0 && this.#recheck !== undefined) {
        clearTimeout(this.#recheck);
        this.#recheck = undefined;
      }
    };
  }

  /** Why a pool may not start a session now, for the error an acquire gets. */
  describe(): string {
    return this.#mode === 'reserved'
      ? `the host memory budget is spent (${this.reservedMb} of ${this.#capacityMb} MiB reserved by sessions)`
      : `the host's available memory (${Math.round(this.availableMb ?? 0)} MiB, of which ${this.#creatingMb} MiB are ` +
          `promised to sessions being created) is at the ${this.#floorMb} MiB kept free`;
  }

  #notify(): void {
    if (this.#listeners.size === 0) return;
    queueMicrotask(() => {
      for (const listener of [...this.#listeners]) listener();
    });
  }
}

const configured = Number(process.env['SANDPOOL_HOST_MEMORY_BUDGET_MB']);
const floor = Number(process.env['SANDPOOL_HOST_MEMORY_FLOOR_MB']);
/** The budget shared by every pool in this process. */
export const hostMemoryBudget = new HostMemoryBudget(
  Number.isFinite(configured) && configured > 0 ? configured : Math.floor((totalmem() / MiB) * 0.8),
  {
    ...(Number.isFinite(configured) && configured > 0 ? { mode: 'reserved' as const } : {}),
    ...(Number.isFinite(floor) && floor >= 0 ? { floorMb: floor } : {}),
  },
);

/**
 * What each session of a pool reserves from the budget: 0 for in-process backends, else the
 * memory a session really gets (a custom container's template memory wins over the pool limit).
 */
export function reservationPerSession(options: ResolvedPoolOptions): number {
  if (options.backend.capabilities.inProcess) return 0;
  return resolveCustomContainer(options)?.memoryMb ?? options.limits.memoryMb;
}
