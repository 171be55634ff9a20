import type { BackendSession } from '../backend.js';
import type { StoredManifest } from './pause-store.js';
import type { Session } from '../session.js';
import type { SessionInfo, SessionState } from '../session-types.js';

/**
 * The pool's private record of one session, from its creation to its destruction. Exactly one
 * state at a time, changed only by `SlotTable.transition` (slot-table.ts), which also keeps the
 * pool's sets and counts. The public `Session` exists once the slot is allocated.
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
  /** Resolves when the backend destroy finished; set once destruction starts. */
  destroyed: Promise<void> | undefined;
  /** The public handle, created once on allocation; it owns the session's executions. */
  session: Session | undefined;
  /** Created to replace what was taken, after the pool's initial fill (counts toward the refill rate). */
  refill: boolean;
  /** While Paused: the stored checkpoint the session lives in, and its deletion timer. */
  paused: { readonly manifest: StoredManifest; timer: NodeJS.Timeout | undefined } | undefined;
}

let counter = 0;
const processTag = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;

/** Pool-assigned session ids: unique per process, safe as labels and file names. */
export function newSessionId(): string {
  counter += 1;
  return `s${processTag}-${counter.toString(36)}`;
}

/** A slot not yet known to any table; `SlotTable.transition(slot, 'Pending')` registers it. */
export function newSlot(now: number, refill = false): Slot {
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
    destroyed: undefined,
    session: undefined,
    refill,
    paused: undefined,
  };
}

const toDate = (at: number | undefined): Date | undefined => (at === undefined ? undefined : new Date(at));

/** The public snapshot of a slot (`pool.sessions()`, `session.info()`). */
export function slotInfo(slot: Slot, expiresAt: number | undefined): SessionInfo {
  const paused = slot.paused?.manifest;
  return {
    ...(paused === undefined ? {} : { pausedAt: new Date(paused.pausedAt) }),
    identifier: slot.identifier,
    sessionId: slot.id,
    state: slot.state,
    etag: slot.handle?.etag ?? slot.id,
    createdAt: new Date(slot.createdAt),
    allocatedAt: toDate(slot.allocatedAt),
    lastAccessedAt: toDate(slot.lastAccessedAt),
    expiresAt: toDate(paused?.expiresAt ?? expiresAt),
    executionsInFlight: slot.session?.executionsInFlight ?? 0,
  };
}
