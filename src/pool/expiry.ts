import type { ResolvedPoolOptions } from '../options.js';
import type { Slot } from './slot.js';

/**
 * When an allocated session expires and why. Timed pools expire after `cooldownPeriodInSeconds`
 * without activity; any pool with `maxAlivePeriodInSeconds` also expires that long after
 * allocation, whatever its activity. The earlier of the two wins.
 */
export function expiryOf(
  options: Pick<ResolvedPoolOptions, 'lifecycleType' | 'cooldownPeriodInSeconds' | 'maxAlivePeriodInSeconds'>,
  slot: Pick<Slot, 'lastAccessedAt' | 'allocatedAt'>,
): { at: number | undefined; reason: 'cooldown' | 'maxAlive' } {
  const idle =
    options.lifecycleType === 'Timed' ? (slot.lastAccessedAt ?? 0) + options.cooldownPeriodInSeconds * 1000 : Infinity;
  const alive =
    options.maxAlivePeriodInSeconds === undefined ? Infinity : (slot.allocatedAt ?? 0) + options.maxAlivePeriodInSeconds * 1000;
  const at = Math.min(idle, alive);
  return { at: Number.isFinite(at) ? at : undefined, reason: alive <= idle ? 'maxAlive' : 'cooldown' };
}
