/** Pools as the scenarios use them: one shared backend per target, every pool closed, no leftovers. */

import type { Backend } from '../src/backend.js';
import type { SessionPoolOptions } from '../src/options.js';
import { SessionPool } from '../src/session-pool.js';
import type { BenchTarget, Sizes } from './targets.js';

/** What a scenario gets: the target, its backend (shared by all its pools) and its sizes. */
export interface TargetContext {
  readonly target: BenchTarget;
  readonly backend: Backend;
  readonly sizes: Sizes;
  /** Memory budget for (h), in bytes (1 GiB unless `--budget-mib` says otherwise). */
  readonly budgetBytes: number;
  /** Progress lines for a human watching a long run. */
  readonly log: (message: string) => void;
}

/** Collect garbage when the flag allows it, twice so weak/finalizer chains settle too. */
export function collectGarbage(): void {
  // `gc` is present when node runs with --expose-gc (npm run bench does).
  globalThis.gc?.();
  globalThis.gc?.();
}

let poolCounter = 0;

/**
 * A pool over the target's backend that never reaps anything during a measurement (long cooldown)
 * and never closes the shared backend. Pool errors are recorded, not thrown: a scenario decides.
 */
export function openPool(context: TargetContext, options: Partial<SessionPoolOptions>): SessionPool {
  poolCounter += 1;
  const pool = new SessionPool({
    name: `bench-${poolCounter}`,
    backend: context.backend,
    containerType: context.target.containerType,
    ownsBackend: false,
    cooldownPeriodInSeconds: 3600,
    readySessionInstances: 0,
    ...options,
  });
  pool.on('error', (event) => context.log(`  pool ${event.operation} error: ${event.error.message}`));
  return pool;
}

/**
 * Run `body` against a backend instance of its own, closed afterwards. Memory figures need it: an
 * in-process engine keeps memory it grew for earlier scenarios (a WebAssembly memory never
 * shrinks), which would hide what new sessions cost.
 */
export async function withFreshBackend<T>(context: TargetContext, body: (context: TargetContext) => Promise<T>): Promise<T> {
  const backend = await context.target.load();
  try {
    return await body({ ...context, backend });
  } finally {
    await backend.close();
  }
}

/** Run `body` with a pool that is closed afterwards whatever happens. */
export async function withPool<T>(
  context: TargetContext,
  options: Partial<SessionPoolOptions>,
  body: (pool: SessionPool) => Promise<T>,
): Promise<T> {
  const pool = openPool(context, options);
  try {
    return await body(pool);
  } finally {
    await pool.close();
  }
}

/**
 * Resolve once the pool holds at least `count` Ready sessions. Event-driven, with a slow poll as a
 * safety net; rejects after `timeoutMs` naming what the pool reported.
 */
export function waitForReady(pool: SessionPool, count: number, timeoutMs: number): Promise<void> {
  // stats() summarises latency windows (sorts): call it only when the count may have been reached.
  let missing = count - pool.stats().ready;
  if (missing <= 0) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const check = (): void => {
      missing = count - pool.stats().ready;
      if (missing <= 0) finish();
    };
    const onReady = (): void => {
      missing -= 1;
      if (missing <= 0) check();
    };
    const poll = setInterval(check, 100);
    const timer = setTimeout(() => {
      cleanup();
      const s = pool.stats();
      const last = s.lastError === undefined ? '' : `; last error: ${s.lastError.message}`;
      reject(
        new Error(
          `pool did not reach ${count} Ready sessions within ${timeoutMs} ms (ready ${s.ready}, pending ${s.pending}${last})`,
        ),
      );
    }, timeoutMs);
    const cleanup = (): void => {
      clearInterval(poll);
      clearTimeout(timer);
      pool.off('sessionReady', onReady);
    };
    const finish = (): void => {
      cleanup();
      resolve();
    };
    pool.on('sessionReady', onReady);
  });
}

/** `n` fresh identifiers, generated before any timing starts. */
export function identifiers(n: number, prefix: string): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}-${i}-${SessionPool.generateIdentifier().slice(0, 12)}`);
}

/** A generous wait for `sessions` creations on this target (TCG VMs take tens of seconds each). */
export function readyTimeoutMs(context: TargetContext, sessions: number): number {
  const perSession = context.target.inProcess ? 50 : context.target.backendName === 'vm' ? 60_000 : 5_000;
  return 30_000 + perSession * sessions;
}
