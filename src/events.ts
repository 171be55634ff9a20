/**
 * Typed lifecycle events. Every event takes exactly one payload object, so fields can be added
 * without breaking listeners. Events observe; they never replace a rejected promise. Identifiers
 * appear in payloads because listeners need them, but sandpool itself never logs them.
 */

import type { DestroyReason, LostState } from './backend.js';
import type { SandpoolError } from './errors.js';

interface EventBase {
  /** Pool name. */
  readonly pool: string;
  /** Backend name. */
  readonly backend: string;
  /** Pool-assigned session id (not the caller's identifier). */
  readonly sessionId: string;
  /** Epoch milliseconds when the event happened. */
  readonly at: number;
}

export interface SessionPendingEvent extends EventBase {
  /** Started for a waiting acquire (a cold miss) rather than to refill the ready set. */
  readonly onDemand: boolean;
}

export interface SessionReadyEvent extends EventBase {
  /** Time the backend took to create the session. */
  readonly createDurationMs: number;
}

export interface SessionAllocatedEvent extends EventBase {
  readonly identifier: string;
  /** Time from `acquire()` to the session being handed over. */
  readonly allocationLatencyMs: number;
  /** Time spent waiting for a session to become Ready (0 on a warm hit). */
  readonly queueMs: number;
  /** True when no Ready session was there and the acquire waited for one to be created. */
  readonly coldMiss: boolean;
}

export interface SessionDestroyedEvent extends EventBase {
  readonly identifier: string | undefined;
  readonly reason: DestroyReason;
  /** How long the session lived, from creation. */
  readonly lifetimeMs: number;
  /** For `failed` and `exited`: what happened. */
  readonly message?: string | undefined;
}

export interface SessionPausedEvent extends EventBase {
  readonly identifier: string;
  /** `requested`: session.pause(); `idle`: the cooldown passed under `idleAction: 'pause'`. */
  readonly trigger: 'requested' | 'idle';
  /** Time to write the checkpoint. */
  readonly durationMs: number;
  /** Bytes the checkpoint takes on disk. */
  readonly bytes: number;
  /** What the checkpoint could not keep. */
  readonly lost: readonly LostState[];
}

export interface SessionResumedEvent extends EventBase {
  readonly identifier: string;
  /** The session id it had before (resume) or the snapshot's source session (fork). */
  readonly previousSessionId: string;
  /** `resume`: the paused session came back; `fork`: a new session from a snapshot or `session.fork()`. */
  readonly kind: 'resume' | 'fork';
  readonly snapshotId?: string | undefined;
  /** Time to restore, from the request to a usable session. */
  readonly durationMs: number;
  readonly bytes: number;
  /** Everything the checkpoint and the restore could not bring back. */
  readonly lost: readonly LostState[];
}

export interface ExecutionStartedEvent extends EventBase {
  readonly identifier: string;
  readonly executionId: string;
  readonly language: string;
  /** Time the execution waited behind earlier ones on the same session. */
  readonly queueMs: number;
}

export interface ExecutionFinishedEvent extends EventBase {
  readonly identifier: string;
  readonly executionId: string;
  readonly status: 'Succeeded' | 'Failed';
  readonly durationMs: number;
  readonly timedOut: boolean;
}

export interface PoolExhaustedEvent {
  readonly pool: string;
  readonly backend: string;
  readonly at: number;
  readonly maxConcurrentSessions: number;
  /** Whether the caller chose to wait for a free slot. */
  readonly waiting: boolean;
  /** What ran out: the pool's own limit, or the process-wide host memory budget. */
  readonly reason: 'maxConcurrentSessions' | 'hostMemoryBudget';
}

export interface PoolErrorEvent {
  readonly pool: string;
  readonly backend: string;
  readonly at: number;
  /** What failed: creating a session for the ready set, destroying one, a backend-level step, a pause or a resume. */
  readonly operation: 'create' | 'destroy' | 'prepare' | 'pause' | 'resume';
  readonly error: SandpoolError;
  readonly sessionId?: string | undefined;
  /** For create failures: milliseconds before the pool tries again. */
  readonly retryInMs?: number | undefined;
}

/** The event map for `SessionPool` (eventemitter3 generic). */
export interface SessionPoolEvents {
  sessionPending: (event: SessionPendingEvent) => void;
  sessionReady: (event: SessionReadyEvent) => void;
  sessionAllocated: (event: SessionAllocatedEvent) => void;
  sessionDestroyed: (event: SessionDestroyedEvent) => void;
  sessionPaused: (event: SessionPausedEvent) => void;
  sessionResumed: (event: SessionResumedEvent) => void;
  executionStarted: (event: ExecutionStartedEvent) => void;
  executionFinished: (event: ExecutionFinishedEvent) => void;
  poolExhausted: (event: PoolExhaustedEvent) => void;
  error: (event: PoolErrorEvent) => void;
}

export type SessionPoolEventName = keyof SessionPoolEvents;
