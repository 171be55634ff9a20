import type { ResolvedPoolOptions } from '../options.js';
import type { Slot } from './slot.js';

/**
 * When an allocated session expires and why. Timed pools expire after `cooldownPeriodInSeconds`
 * without activity; any pool with `maxAlivePeriodInSeconds` also expires that long after
 * allocation, whatever its activity. The earlier of the two wins. `session.extend()` moves both
 * deadlines to at least `extendedUntil` (it never brings one forward).
 */
export function expiryOf(
  options: Pick<ResolvedPoolOptions, 'lifecycleType' | 'cooldownPeriodInSeconds' | 'maxAlivePeriodInSeconds'>,
  slot: Pick<Slot, 'lastAccessedAt' | 'allocatedAt' | 'extendedUntil'>,
): { at: number | undefined; reason: 'cooldown' | 'maxAlive' } {
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
 * Arm the slot's single expiry timer for its current expiry. The timer is unref'd (an idle pool
 * never keeps the process alive) and capped at Node's 2^31−1 ms limit; `onDue` re-checks lazily,
 * so activity after arming needs no timer churn.
 */
export function armExpiry(slot: Slot, options: Parameters<typeof expiryOf>[0], onDue: (slot: Slot) => void): void {
  if (slot.expiryTimer !== undefined) clearTimeout(slot.expiryTimer);
  slot.expiryTimer = undefined;
  if (slot.state !== 'Allocated') return;
  const { at } = expiryOf(options, slot);
  if (at === undefined) return;
  const delay = Math.min(Math.max(0, at - Date.now()), 2 ** 31 - 1);
  slot.expiryTimer = setTimeout(() => {
    slot.expiryTimer = undefined;
    onDue(slot);
  }, delay).unref();
}
