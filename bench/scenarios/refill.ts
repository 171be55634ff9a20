/**
 * (f) Sustained refill rate: from an empty pool, raise readySessionInstances to N and time until
 * N sessions are Ready, once per refill concurrency. This is the rate at which a pool recovers
 * from a burst, and what examples/bench-sizing.ts sizes pools from.
 */

import { readyTimeoutMs, waitForReady, withPool } from '../pool-helpers.js';
import { summarize } from '../stats.js';
import type { Measurement } from '../types.js';
import { measurementsOf, type Scenario } from './scenario.js';

export const refill: Scenario = {
  name: 'refill',
  description: '(f) sustained refill rate from empty, per refill concurrency',
  async run(context) {
    const m = measurementsOf(context, this.name);
    const { count, concurrency } = context.sizes.refill;
    const results: Measurement[] = [];
    for (const refillConcurrency of concurrency) {
      const createMs: number[] = [];
      const rate = await withPool(
        context,
        { readySessionInstances: 0, maxConcurrentSessions: count, refillConcurrency },
        async (pool) => {
          await pool.start(); // prepares the backend, untimed
          pool.on('sessionReady', (event) => createMs.push(event.createDurationMs));
          const t0 = performance.now();
          pool.update({ readySessionInstances: count });
          await waitForReady(pool, count, readyTimeoutMs(context, count));
          return (count * 1000) / (performance.now() - t0);
        },
      );
      const detail = { sessions: count, refillConcurrency };
      results.push(m.value(`rate @${refillConcurrency}`, 'sessions/s', rate, detail));
      results.push(m.latency(`create @${refillConcurrency}`, summarize(createMs), detail));
    }
    return results;
  },
};
