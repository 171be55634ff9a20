import type { DestroyReason } from '../backend.js';
import type { SandpoolError } from '../errors.js';
import type { PoolStats } from '../session-types.js';
import { LatencyWindow } from './latency-window.js';

type Live = Pick<
  PoolStats,
  | 'name'
  | 'backend'
  | 'closed'
  | 'pending'
  | 'ready'
  | 'allocated'
  | 'waiting'
  | 'maxConcurrentSessions'
  | 'readySessionInstances'
  | 'readyTarget'
  | 'arrivalsPerSecond'
  | 'paused'
  | 'pausedBytes'
>;

/** Monotonic counters of one pool; `snapshot()` combines them with the live counts. */
export class PoolStatistics {
  created = 0;
  executions = 0;
  allocations = 0;
  coldMisses = 0;
  createFailures = 0;
  lastError: PoolStats['lastError'];
  readonly destroyed: Record<DestroyReason, number> = {
    cooldown: 0,
    maxAlive: 0,
    stopped: 0,
    exited: 0,
    failed: 0,
    poolClosed: 0,
    pauseExpired: 0,
  };

  readonly allocationMs = new LatencyWindow();
  readonly queueMs = new LatencyWindow();
  readonly createMs = new LatencyWindow();
  readonly firstExecutionMs = new LatencyWindow();
  /** Creations that replaced taken sessions, after the initial fill. */
  readonly refillCreateMs = new LatencyWindow();
  #refillCreated = 0;
  /** Refill creations in flight, and since when at least one was (for the busy time). */
  #refilling = 0;
  #refillingSince = 0;
  #refillBusyMs = 0;

  /** A refill creation started. */
  refillStarted(now: number): void {
    if (this.#refilling === 0) this.#refillingSince = now;
    this.#refilling += 1;
  }

  /** A refill creation ended (created, failed or dropped). */
  refillEnded(now: number): void {
    if (this.#refilling === 0) return;
    this.#refilling -= 1;
    if (this.#refilling === 0) this.#refillBusyMs += now - this.#refillingSince;
  }

  /** The backend created a session in `createMs`; `refill`: a replacement, after the initial fill. */
  recordCreated(createMs: number, refill: boolean, now: number): void {
    this.created += 1;
    this.createMs.add(createMs);
    if (!refill) return;
    this.#refillCreated += 1;
    this.refillCreateMs.add(createMs);
    this.refillEnded(now);
  }

  /** Refill creations per second of time spent refilling (at least one creation in flight). */
  #refillRate(now: number): number {
    const busy = this.#refillBusyMs + (this.#refilling > 0 ? now - this.#refillingSince : 0);
    return busy <= 0 ? 0 : (this.#refillCreated * 1000) / busy;
  }

  recordAllocation(latencyMs: number, queueMs: number, coldMiss: boolean): void {
    this.allocations += 1;
    if (coldMiss) this.coldMisses += 1;
    this.allocationMs.add(latencyMs);
    this.queueMs.add(queueMs);
  }

  /** A finished execution; the first on a session also feeds the first-execution timing. */
  recordExecution(durationMs: number, first: boolean): void {
    this.executions += 1;
    if (first) this.firstExecutionMs.add(durationMs);
  }

  recordCreateFailure(error: SandpoolError): void {
    this.createFailures += 1;
    this.lastError = { message: error.message, code: error.code, at: new Date() };
  }

  recordDestroy(reason: DestroyReason): void {
    this.destroyed[reason] += 1;
  }

  snapshot(live: Live): PoolStats {
    return {
      ...live,
      created: this.created,
      destroyed: { ...this.destroyed },
      allocations: this.allocations,
      coldMisses: this.coldMisses,
      coldMissRate: this.allocations === 0 ? 0 : this.coldMisses / this.allocations,
      createFailures: this.createFailures,
      executions: this.executions,
      lastError: this.lastError,
      timings: {
        allocationMs: this.allocationMs.summary(),
        queueMs: this.queueMs.summary(),
        createMs: this.createMs.summary(),
        firstExecutionMs: this.firstExecutionMs.summary(),
      },
      refill: {
        created: this.#refillCreated,
        sessionsPerSecond: this.#refillRate(performance.now()),
        createMs: this.refillCreateMs.summary(),
      },
    };
  }
}
