import type { ResolvedPoolOptions } from '../options.js';
import type { Slot } from './slot.js';

type ExpiryOptions = Pick<ResolvedPoolOptions, 'lifecycleType' | 'cooldownPeriodInSeconds' | 'maxAlivePeriodInSeconds'>;
export type ExpiryReason = 'cooldown' | 'maxAlive';

/**
 * When an allocated session expires and why. Timed pools expire after `cooldownPeriodInSeconds`
 * without activity; any pool with `maxAlivePeriodInSeconds` also expires that long after
 * allocation, whatever its activity. The earlier of the two wins. `session.extend()` moves both
 * deadlines to at least `extendedUntil` (it never brings one forward).
 */
export function expiryOf(
  options: ExpiryOptions,
  slot: Pick<Slot, 'lastAccessedAt' | 'allocatedAt' | 'extendedUntil'>,
): { at: number | undefined; reason: ExpiryReason } {
  const floor = slot.extendedUntil ?? -Infinity;
  const idle =
    options.lifecycleType === 'Timed'
      ? Math.max(floor, (slot.lastAccessedAt ?? 0) + options.cooldownPeriodInSeconds * 1000)
      : Infinity;
  const alive =
    options.maxAlivePeriodInSeconds === undefined
      ? Infinity
      : Math.max(floor, (slot.allocatedAt ?? 0) + options.maxAlivePeriodInSeconds * 1000);
  const at = Math.min(idle, alive);
  return { at: Number.isFinite(at) ? at : undefined, reason: alive <= idle ? 'maxAlive' : 'cooldown' };
}

/**
 * Reaps allocated sessions of one pool when they expire. Each allocated slot has at most one
 * timer, unref'd (an idle pool never keeps the process alive) and capped at Node's 2^31−1 ms
 * limit. A firing timer re-checks lazily, so activity after arming needs no timer churn; a session
 * that is running code is never reaped: `check` runs again when its executions settle.
 */
export class SessionExpiry {
  constructor(
    private readonly options: () => ExpiryOptions,
    private readonly reap: (slot: Slot, reason: ExpiryReason) => void,
  ) {}

  /** When the slot will be reaped if nothing happens (allocated slots only). */
  expiresAt(slot: Slot): number | undefined {
    return slot.state === 'Allocated' ? expiryOf(this.options(), slot).at : undefined;
  }

  /** (Re-)arm the slot's timer for its current expiry. */
  arm(slot: Slot): void {
    if (slot.expiryTimer !== undefined) clearTimeout(slot.expiryTimer);
    slot.expiryTimer = undefined;
    if (slot.state !== 'Allocated') return;
    const { at } = expiryOf(this.options(), slot);
    if (at === undefined) return;
    const delay = Math.min(Math.max(0, at - Date.now()), 2 ** 31 - 1);
    slot.expiryTimer = setTimeout(() => {
      slot.expiryTimer = undefined;
      this.check(slot);
    }, delay).unref();
  }

  /** Reap the slot if it has expired and runs no code; re-arm it if it has not expired yet. */
  check(slot: Slot): void {
    if (slot.state !== 'Allocated') return;
    const { at, reason } = expiryOf(this.options(), slot);
    if (at === undefined) return;
    if (Date.now() < at) {
      if (slot.expiryTimer === undefined) this.arm(slot);
      return;
    }
    if ((slot.session?.executionsInFlight ?? 0) > 0) return;
    this.reap(slot, reason);
  }
}
