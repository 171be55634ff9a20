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

/**
 * How many queued acquires the pool can serve, oldest first: one per creation in flight (a Ready
 * session goes to the oldest waiter) plus one per session it may still create. An acquire queued
 * beyond that would wait until some unrelated session ends.
 */
export function servableWaiters(pending: number, room: number): number {
  return pending + Math.max(0, room);
}

/**
 * What ran out: the host memory budget when it leaves less room than `maxConcurrentSessions`
 * does, else the pool's own limit.
 */
export function exhaustionReason(
  live: number,
  maxConcurrentSessions: number,
  room: number,
): 'hostMemoryBudget' | 'maxConcurrentSessions' {
  return room < maxConcurrentSessions - live ? 'hostMemoryBudget' : 'maxConcurrentSessions';
}

/**
 * When the slot an acquire could next have frees, in ms from `now`: the deadline (cooldown or
 * maxAlive) of the allocated session that ends soonest after the `ahead` ones whose slots acquires
 * already waiting for a free slot will take. Undefined when too few sessions have a deadline
 * (OnContainerExit without maxAlive, or sessions extended without end): nothing predicts it then.
 */
export function soonestFreeSlotMs(deadlines: readonly number[], ahead: number, now: number): number | undefined {
  if (deadlines.length <= ahead) return undefined;
  let at = Infinity;
  if (ahead === 0) for (const deadline of deadlines) at = Math.min(at, deadline);
  else at = [...deadlines].sort((a, b) => a - b)[ahead]!;
  return Math.max(0, Math.ceil(at - now));
}

export function exhaustedError(
  reason: 'hostMemoryBudget' | 'maxConcurrentSessions',
  pool: { readonly name: string; readonly maxConcurrentSessions: number },
  budget: HostMemoryBudget,
  retryAfterMs: number | undefined,
): PoolExhaustedError {
  const when =
    retryAfterMs === undefined
      ? 'no session of the pool has a deadline, so none is due to end'
      : `the soonest slot frees in ${Math.ceil(retryAfterMs / 1000)} s`;
  return new PoolExhaustedError(
    reason === 'hostMemoryBudget'
      ? `${budget.describe()} (queued acquires included); ${when}; stop sessions or acquire with { wait: true }`
      : `session pool "${pool.name}" is at maxConcurrentSessions (${pool.maxConcurrentSessions} sessions live or ` +
          `claimed by queued acquires); ${when}; stop a session, raise the limit, or acquire with { wait: true }`,
    { retryAfterMs },
  );
}

/** An acquire that nothing on the way can serve while the backend keeps failing to create sessions. */
export function backendFailingError(backend: string, lastError: string | undefined, retryInMs: number): BackendError {
  retryInMs = Math.ceil(retryInMs);
  return new BackendError(
    `backend "${backend}" is failing to create sessions (${lastError ?? 'unknown error'}); retrying in ${retryInMs} ms`,
    { code: ErrorCode.BACKEND_UNAVAILABLE, retryAfterMs: retryInMs },
  );
}
