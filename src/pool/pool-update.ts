import { z } from 'zod';

import { parseOrThrow, type ResolvedPoolOptions } from '../options.js';
import { InvalidOptionsError } from '../errors.js';

/** The settings a running pool can change (Azure's PATCH-able scale and lifecycle properties). */
export const PoolUpdateSchema = z
  .object({
    readySessionInstances: z.number().int().min(0).max(100_000).optional(),
    maxConcurrentSessions: z.number().int().min(1).max(100_000).optional(),
    cooldownPeriodInSeconds: z
      .number()
      .positive()
      .max(7 * 86_400)
      .optional(),
    maxAlivePeriodInSeconds: z
      .number()
      .positive()
      .max(30 * 86_400)
      .optional(),
  })
  .strict();
export type PoolUpdate = z.input<typeof PoolUpdateSchema>;

export function applyPoolUpdate(current: ResolvedPoolOptions, patch: PoolUpdate): ResolvedPoolOptions {
  const update = parseOrThrow(PoolUpdateSchema, patch, 'pool update');
  const next: ResolvedPoolOptions = {
    ...current,
    readySessionInstances: update.readySessionInstances ?? current.readySessionInstances,
    maxConcurrentSessions: update.maxConcurrentSessions ?? current.maxConcurrentSessions,
    cooldownPeriodInSeconds: update.cooldownPeriodInSeconds ?? current.cooldownPeriodInSeconds,
    maxAlivePeriodInSeconds: update.maxAlivePeriodInSeconds ?? current.maxAlivePeriodInSeconds,
  };
  if (next.readySessionInstances > next.maxConcurrentSessions) {
    throw new InvalidOptionsError(
      `invalid pool update:\n  - readySessionInstances: must not exceed maxConcurrentSessions (${next.readySessionInstances} > ${next.maxConcurrentSessions})`,
    );
  }
  if (update.cooldownPeriodInSeconds !== undefined && current.lifecycleType === 'OnContainerExit') {
    throw new InvalidOptionsError(
      'invalid pool update:\n  - cooldownPeriodInSeconds: is not allowed with lifecycleType OnContainerExit',
    );
  }
  return next;
}
