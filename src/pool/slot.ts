import type { BackendSession } from '../backend.js';
import type { SessionState } from '../session-types.js';

/**
 * The pool's private record of one session. Exactly one state at a time; the pool derives every
 * count from these records instead of keeping separate counters that could drift.
 */
export interface Slot {
  readonly id: string;
  state: SessionState;
  /** Set once the backend's create resolved. */
  handle: BackendSession | undefined;
  /** Aborts an in-flight backend create when the pool closes or the slot is dropped. */
  readonly createAbort: AbortController;
  identifier: string | undefined;
  readonly createdAt: number;
  readyAt: number | undefined;
  allocatedAt: number | undefined;
  lastAccessedAt: number | undefined;
  /** `session.extend()`: the session does not expire (cooldown or maxAlive) before this instant. */
  extendedUntil: number | undefined;
  /** One timer per allocated session; on firing it re-checks cooldown and maxAlive lazily. */
  expiryTimer: NodeJS.Timeout | undefined;
  /** Executions finished on this session. */
  executionCount: number;
  /** Executions started and not yet settled (running + queued). */
  executions: number;
  /** Tail of this session's FIFO execution chain. */
  tail: Promise<unknown>;
  /** Set when the slot should be destroyed as soon as its executions finish. */
  expireWhenIdle: 'cooldown' | 'maxAlive' | undefined;
  /** Resolves when the backend destroy finished; set once destruction starts. */
  destroyed: Promise<void> | undefined;
  /** The public handle, created once on allocation. */
  handleObject: unknown;
}

let counter = 0;
const processTag = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;

/** Pool-assigned session ids: unique per process, safe as labels and file names. */
export function newSessionId(): string {
  counter += 1;
  return `s${processTag}-${counter.toString(36)}`;
}

export function newSlot(now: number): Slot {
  return {
    id: newSessionId(),
    state: 'Pending',
    handle: undefined,
    createAbort: new AbortController(),
    identifier: undefined,
    createdAt: now,
    readyAt: undefined,
    allocatedAt: undefined,
    lastAccessedAt: undefined,
    extendedUntil: undefined,
    expiryTimer: undefined,
    executions: 0,
    executionCount: 0,
    tail: Promise.resolve(),
    expireWhenIdle: undefined,
    destroyed: undefined,
    handleObject: undefined,
  };
}
