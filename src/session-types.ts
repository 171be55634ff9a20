/** Public shapes of sessions, executions and pool statistics. */

import type { DestroyReason, ImageOutput, Language, LostState, OutputChunk } from './backend.js';
import type { SandpoolError } from './errors.js';
import type { ByteSource } from './pool/byte-source.js';
import type { LatencySummary } from './pool/latency-window.js';
import type { JsonValue } from './types.js';

/** `Paused`: the session's state is on disk (`session.pause()`, `idleAction: 'pause'`); any use resumes it. */
export type SessionState = 'Pending' | 'Ready' | 'Allocated' | 'Paused' | 'Destroyed';

export interface AcquireOptions {
  /** At maxConcurrentSessions, wait for a free slot instead of rejecting with PoolExhaustedError. */
  readonly wait?: boolean | undefined;
  /** Give up waiting (rejects with AbortedError). */
  readonly signal?: AbortSignal | undefined;
  /** Give up waiting after this long (rejects with code SANDPOOL_ACQUIRE_TIMEOUT). */
  readonly timeoutMs?: number | undefined;
  /**
   * Environment variables bound to the session when this acquire claims it (a warm session stays
   * warm: one round trip to the sandbox, no restart). Python sees them in `os.environ`, Node.js in
   * `process.env`, shell commands and every process the code starts in their environment; the
   * isolates in a read-only `env` object. An identifier that already has a live session keeps its
   * own. Names match `[A-Za-z_][A-Za-z0-9_]*`; at most 256 variables and 256 KiB. Values are
   * secrets: never logged, never in an event, an error or `stats()`. (A paused session's
   * checkpoint holds them like the rest of its state: 0600, under the pool's dataDirectory.)
   */
  readonly env?: Readonly<Record<string, string>> | undefined;
  /** Files written under `/mnt/data` when this acquire claims the session: path → content. */
  readonly files?: Readonly<Record<string, ByteSource>> | undefined;
  /**
   * Start the identifier's new session from this snapshot (`pool.snapshot()`): a fork, with
   * reseeded random generators. The identifier must not have a session yet.
   */
  readonly from?: string | undefined;
}

export interface ExecuteOptions {
  /** Source code (Python, JavaScript, or a shell command line for Shell pools). */
  readonly code: string;
  /** Defaults to the pool's language (PythonLTS → python, NodeLTS → javascript, Shell → shell). */
  readonly language?: Language | undefined;
  /** Wall-clock limit; defaults to the pool's `limits.executionTimeoutSeconds`. */
  readonly timeoutInSeconds?: number | undefined;
  /** Shell pools: run a program with arguments instead of `code` through /bin/sh. */
  readonly argv?: readonly string[] | undefined;
  /** Shell pools: standard input. */
  readonly stdin?: string | undefined;
  /** Per-stream output cap in bytes; defaults to the pool's `limits.outputMaxBytes` and cannot exceed it. */
  readonly outputMaxBytes?: number | undefined;
  /** Aborting interrupts the code like a timeout; `execute` then rejects with AbortedError. */
  readonly signal?: AbortSignal | undefined;
  /**
   * Called with output while the code runs: `{ type: 'stdout' | 'stderr', text }` as it is written,
   * `{ type: 'display', image }` for each image the code displays (matplotlib figures). The text
   * pieces of a stream, joined, are exactly the result's `stdout`/`stderr` (cap and marker
   * included). Never called after `execute` settles; an exception it throws is ignored.
   */
  readonly onOutput?: ((chunk: OutputChunk) => void) | undefined;
  /**
   * Environment variables for this execution only, on top of the session's (`acquire`'s `env`):
   * `os.environ` in Python, `process.env` in Node.js, the command's environment for shell, the
   * read-only `env` object in the isolates. Names match `[A-Za-z_][A-Za-z0-9_]*`; at most 256
   * variables and 256 KiB. Values are secrets: never logged, never in an event or error.
   */
  readonly env?: Readonly<Record<string, string>> | undefined;
}

/** Options of `session.executeStream`. */
export interface ExecuteStreamOptions {
  /** Aborting interrupts the code like a timeout; the iteration then throws AbortedError. */
  readonly signal?: AbortSignal | undefined;
}

/**
 * What `session.executeStream` yields: output as it happens, then the result's value (when there
 * is one), then `end` with exactly the fields `execute` resolves with.
 */
export type ExecutionEvent =
  | { readonly type: 'stdout' | 'stderr'; readonly text: string }
  | { readonly type: 'display'; readonly image: ImageOutput }
  /** The last expression's value (Azure semantics); only when the execution produced one. */
  | { readonly type: 'result'; readonly result: JsonValue }
  | ({ readonly type: 'end' } & ExecutionResult);

/** The result of one execution, with Azure's statuses and result semantics. */
export interface ExecutionResult {
  /** Pool-unique id of this execution. */
  readonly id: string;
  readonly status: 'Succeeded' | 'Failed';
  /** Last expression's value: JSON primitive, text/plain repr, image object, or "" when none. */
  readonly result: JsonValue;
  readonly stdout: string;
  readonly stderr: string;
  readonly executionTimeInMilliseconds: number;
  /** Shell pools: the exit code. */
  readonly exitCode?: number | undefined;
  /** Output streams that were cut at the cap. */
  readonly truncated: { readonly stdout: boolean; readonly stderr: boolean };
  /** Images displayed by the code beyond `result`. */
  readonly images: readonly ImageOutput[];
  /** State of the session afterwards: kept, interpreter restarted, or replaced (destroyed). */
  readonly sessionState: 'kept' | 'restarted' | 'replaced';
  /** Why the execution failed, where sandpool knows (e.g. an ExecutionTimeoutError). */
  readonly error?: SandpoolError | undefined;
}

/** A snapshot of one session, as listed by `pool.sessions()` and reported by `session.info()`. */
export interface SessionInfo {
  readonly identifier: string | undefined;
  readonly sessionId: string;
  readonly state: SessionState;
  /** Underlying resource id (container or VM id); Azure's `etag`. */
  readonly etag: string;
  readonly createdAt: Date;
  readonly allocatedAt: Date | undefined;
  readonly lastAccessedAt: Date | undefined;
  /**
   * When the session will be destroyed (or paused, under `idleAction: 'pause'`) if nothing happens:
   * cooldown or maxAlive; for a paused session, when it is deleted (`maxPausedPeriodInSeconds`).
   */
  readonly expiresAt: Date | undefined;
  /** Set while the session is paused. */
  readonly pausedAt?: Date | undefined;
  readonly executionsInFlight: number;
}

export interface PoolStats {
  readonly name: string;
  readonly backend: string;
  readonly closed: boolean;
  readonly pending: number;
  readonly ready: number;
  readonly allocated: number;
  /** Paused sessions (on disk, holding no memory), and the bytes their checkpoints take. */
  readonly paused: number;
  readonly pausedBytes: number;
  /** Acquires waiting for a session to become Ready. */
  readonly waiting: number;
  readonly maxConcurrentSessions: number;
  readonly readySessionInstances: number;
  readonly created: number;
  readonly destroyed: Readonly<Record<DestroyReason, number>>;
  readonly allocations: number;
  /** Allocations that found no Ready session and waited for one to be created. */
  readonly coldMisses: number;
  readonly coldMissRate: number;
  readonly createFailures: number;
  readonly executions: number;
  /** Ready sessions the pool currently aims for (the floor, or more under adaptive scaling). */
  readonly readyTarget: number;
  /** Allocations of new identifiers per second, averaged over the adaptive window (10 s by default). */
  readonly arrivalsPerSecond: number;
  /**
   * Per-allocation timing: total allocation latency, time queued waiting for a Ready session,
   * backend create time of every session (the initial fill included), and the first execution on
   * a freshly allocated session.
   */
  readonly timings: {
    readonly allocationMs: LatencySummary;
    readonly queueMs: LatencySummary;
    readonly createMs: LatencySummary;
    readonly firstExecutionMs: LatencySummary;
  };
  /**
   * Sessions created after `start()` resolved (or after the first acquire of a pool never
   * started), to replace what was taken, stopped or reaped: how many, how long each took, and the
   * sustained rate — refill creations per second of time during which at least one was in flight.
   */
  readonly refill: {
    readonly created: number;
    readonly sessionsPerSecond: number;
    readonly createMs: LatencySummary;
  };
  /** Most recent create failure, while the pool is backing off. */
  readonly lastError: { readonly message: string; readonly code: string; readonly at: Date } | undefined;
}

/** What `session.pause()` did. */
export interface PauseResult {
  /** Bytes the checkpoint takes on disk. */
  readonly bytes: number;
  readonly durationMs: number;
  /** What the checkpoint could not keep (interpreter-level pauses): named, never dropped silently. */
  readonly lost: readonly LostState[];
}

/** What `session.resume()` (or a transparent resume) did. */
export interface ResumeResult {
  /** False when the session was not paused (nothing to do). */
  readonly resumed: boolean;
  readonly durationMs: number;
  /** Bytes of the checkpoint it was resumed from. */
  readonly bytes: number;
  /** Everything the pause and the restore could not bring back. */
  readonly lost: readonly LostState[];
}

/** A named snapshot (`pool.snapshot(identifier)`), the source of `acquire(id, { from })`. */
export interface SnapshotInfo {
  readonly id: string;
  /** The identifier of the session it was taken from. */
  readonly identifier: string;
  readonly createdAt: Date;
  readonly bytes: number;
  readonly lost: readonly LostState[];
}
