/**
 * Readiness: `/healthz` says the process answers; `/readyz` says its pools are ready. A pool the
 * server is still setting up (a built-in pool whose backend is being probed: seconds to minutes
 * on a fresh machine) is announced first, so `/readyz` waits for it rather than reporting ready
 * before the pool even exists.
 */

import type { SessionPool } from '../session-pool.js';
import type { PoolRegistry } from './pool-registry.js';

/** A pool's state as `/readyz` reports it. */
export type PoolReadiness =
  /** Announced; its backend is being chosen and prepared. */
  | 'probing'
  /** Created; filling its ready set. */
  | 'starting'
  /** Its ready set was filled once. */
  | 'ready'
  /** Its start failed; the pool keeps retrying with backoff. */
  | 'failed'
  /** No backend can run it on this host: it will not be served (the log says why). */
  | 'unavailable';

export interface PoolReadinessReport {
  readonly name: string;
  readonly state: PoolReadiness;
  readonly backend?: string | undefined;
  readonly readySessions?: number | undefined;
  readonly readySessionInstances?: number | undefined;
}

export interface ReadinessReport {
  readonly ready: boolean;
  readonly pools: readonly PoolReadinessReport[];
}

/** What the announcer of a pool does once it knows. */
export interface AnnouncedPool {
  /** The pool exists: serve it (it starts now) and drop the announcement. */
  add(pool: SessionPool): void;
  /** No pool will come: report it as unavailable (it does not hold readiness back). */
  unavailable(): void;
}

export class Readiness {
  /** Announced pools not in the registry yet. */
  readonly #announced = new Map<string, 'probing' | 'unavailable'>();
  readonly #registry: PoolRegistry;

  constructor(registry: PoolRegistry) {
    this.#registry = registry;
  }

  announce(name: string): AnnouncedPool {
    this.#announced.set(name, 'probing');
    return {
      add: (pool) => {
        this.#registry.addStatic(pool);
        this.#announced.delete(name);
      },
      unavailable: () => {
        this.#announced.set(name, 'unavailable');
      },
    };
  }

  /** Ready when nothing is being probed and every served pool has filled its ready set. */
  report(): ReadinessReport {
    const pools: PoolReadinessReport[] = [];
    for (const [name, state] of this.#announced) pools.push({ name, state });
    for (const entry of this.#registry.entries()) {
      const stats = entry.pool.stats();
      const state: PoolReadiness =
        entry.provisioningState === 'Succeeded' ? 'ready' : entry.provisioningState === 'Failed' ? 'failed' : 'starting';
      pools.push({
        name: entry.pool.name,
        state,
        backend: entry.pool.backend.name,
        readySessions: stats.ready,
        readySessionInstances: entry.pool.options.readySessionInstances,
      });
    }
    pools.sort((a, b) => a.name.localeCompare(b.name));
    return { ready: pools.every((p) => p.state === 'ready' || p.state === 'unavailable'), pools };
  }
}
