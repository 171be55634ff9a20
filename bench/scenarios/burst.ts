/**
 * (e) A burst of new identifiers, all in the same tick, against a pool holding a few Ready
 * sessions: the first ones adopt Ready sessions, the rest wait (in order) for sessions the pool
 * creates within its refill budget. Reports per-request latency, success rate and makespan.
 */

import type { Session } from '../../src/session.js';
import { identifiers, readyTimeoutMs, waitForReady, withPool } from '../pool-helpers.js';
import { summarize } from '../stats.js';
import { probe } from './latency.js';
import { measurementsOf, type Scenario } from './scenario.js';

export const burst: Scenario = {
  name: 'burst',
  description: '(e) burst of concurrent new identifiers against a pool with a few Ready sessions',
  async run(context) {
    const m = measurementsOf(context, this.name);
    const { size, ready, rounds } = context.sizes.burst;
    const acquire: number[] = [];
    const total: number[] = [];
    const makespans: number[] = [];
    const failures = new Map<string, number>();
    let coldMisses = 0;
    let refillConcurrency = 0;
    const maxConcurrentSessions = Math.max(size, ready);
    const timeoutMs = readyTimeoutMs(context, size);
    await withPool(context, { readySessionInstances: ready, maxConcurrentSessions }, async (pool) => {
      refillConcurrency = pool.options.refillConcurrency;
      await pool.start();
      for (let round = 0; round < rounds; round += 1) {
        await waitForReady(pool, ready, readyTimeoutMs(context, ready));
        const ids = identifiers(size, 'burst');
        const missesBefore = pool.stats().coldMisses;
        const taken: Session[] = [];
        const started = performance.now();
        await Promise.all(
          ids.map(async (id) => {
            const t0 = performance.now();
            try {
              const session = await pool.acquire(id, { wait: true, timeoutMs });
              taken.push(session);
              const t1 = performance.now();
              await probe(context, session);
              acquire.push(t1 - t0);
              total.push(performance.now() - t0);
            } catch (error) {
              const code = (error as { code?: string }).code ?? (error as Error).message.slice(0, 80);
              failures.set(code, (failures.get(code) ?? 0) + 1);
            }
          }),
        );
        makespans.push(performance.now() - started);
        coldMisses += pool.stats().coldMisses - missesBefore;
        await Promise.all(taken.map((s) => s.stop()));
      }
    });
    const attempts = size * rounds;
    const succeeded = total.length;
    const detail = {
      burst: size,
      ready,
      rounds,
      maxConcurrentSessions,
      refillConcurrency,
      coldMisses,
      ...(failures.size > 0 ? { failures: [...failures].map(([code, n]) => `${code}×${n}`).join(', ') } : {}),
    };
    return [
      m.latency('acquire', summarize(acquire), detail),
      m.latency('acquire+execute', summarize(total), detail),
      m.latency('makespan', summarize(makespans), detail),
      m.value('success rate', 'percent', (100 * succeeded) / attempts, { succeeded, attempts }),
    ];
  },
};
