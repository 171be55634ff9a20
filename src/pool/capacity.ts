/**
 * How many sessions a pool wants and what stops it from having them: the ready target (a floor,
 * raised under adaptive scaling), how many creations one refill starts, and the error an acquire
 * gets when nothing more may be created. Pure functions of the pool's numbers.
 */

import { BackendError, ErrorCode, PoolExhaustedError } from '../errors.js';
import type { ResolvedPoolOptions } from '../options.js';
import type { HostMemoryBudget } from './host-budget.js';

type ScaleOptions = Pick<ResolvedPoolOptions, 'readySessionInstances' | 'maxConcurrentSessions' | 'adaptiveReady'>;

/**
 * Ready sessions to aim for: `readySessionInstances`, raised under `adaptiveReady` to arrivals/s ×
 * `coverSeconds` (up to `maxReadySessionInstances`), never more than the room left beside the
 * allocated sessions.
 */
export function readyTarget(options: ScaleOptions, arrivalsPerSecond: number, allocated: number): number {
  const { readySessionInstances, maxConcurrentSessions, adaptiveReady } = options;
  let target = readySessionInstances;
  if (adaptiveReady !== undefined) {
    const demand = Math.ceil(arrivalsPerSecond * adaptiveReady.coverSeconds);
    target = Math.max(target, Math.min(demand, adaptiveReady.maxReadySessionInstances));
  }
  return Math.min(target, Math.max(0, maxConcurrentSessions - allocated));
}

export interface RefillState {
  readonly target: number;
  readonly waiting: number;
  readonly ready: number;
  readonly pending: number;
  /** Sessions that may still be created (maxConcurrentSessions, host memory budget). */
  readonly room: number;
  readonly refillConcurrency: number;
}

/** Creations to start now: cover the target plus the waiters, within the room and the concurrency budget. */
export function creationsWanted(s: RefillState): number {
  return Math.min(s.target + s.waiting - s.ready - s.pending, s.room, s.refillConcurrency - s.pending);
}

/** What ran out when an acquire finds no room: the host memory budget or the pool's own limit. */
export function exhaustionReason(live: number, maxConcurrentSessions: number): 'hostMemoryBudget' | 'maxConcurrentSessions' {
  return live < maxConcurrentSessions ? 'hostMemoryBudget' : 'maxConcurrentSessions';
}

export function exhaustedError(
  reason: 'hostMemoryBudget' | 'maxConcurrentSessions',
  pool: { readonly name: string; readonly maxConcurrentSessions: number },
  budget: HostMemoryBudget,
): PoolExhaustedError {
  return new PoolExhaustedError(
    reason === 'hostMemoryBudget'
      ? `the host memory budget is spent (${budget.reservedMb} of ${budget.capacityMb} MiB ` +
          'reserved by sessions); stop sessions or acquire with { wait: true }'
      : `session pool "${pool.name}" is at maxConcurrentSessions (${pool.maxConcurrentSessions}); ` +
          'stop a session, raise the limit, or acquire with { wait: true }',
  );
}

/** An acquire that nothing on the way can serve while the backend keeps failing to create sessions. */
export function backendFailingError(backend: string, lastError: string | undefined, retryInMs: number): BackendError {
  return new BackendError(
    `backend "${backend}" is failing to create sessions (${lastError ?? 'unknown error'}); retrying in ${retryInMs} ms`,
    { code: ErrorCode.BACKEND_UNAVAILABLE },
  );
}
