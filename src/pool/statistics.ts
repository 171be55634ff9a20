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
  };

  readonly allocationMs = new LatencyWindow();
  readonly queueMs = new LatencyWindow();
  readonly createMs = new LatencyWindow();
  readonly firstExecutionMs = new LatencyWindow();

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
    };
  }
}
