/**
 * Latency of the calls a user makes: (a) warm acquire, (b) warm acquire + first execute,
 * (c) execute round trip, (d) cold miss.
 *
 * Warm figures come from a pool whose maxConcurrentSessions equals its Ready count: allocating
 * does then not start any refill, so nothing else runs on the event loop (or the CPUs) while a
 * sample is timed. Between rounds the sessions are stopped and the pool refills, untimed. The
 * burst scenario measures the other case, allocation while the pool is refilling.
 */

import type { ExecutionResult } from '../../src/session-types.js';
import type { Session } from '../../src/session.js';
import type { SessionPool } from '../../src/session-pool.js';
import { collectGarbage, identifiers, readyTimeoutMs, waitForReady, withPool, type TargetContext } from '../pool-helpers.js';
import { summarize } from '../stats.js';
import { measurementsOf, type Scenario } from './scenario.js';

/** Execute the target's probe and fail loudly when it did not run correctly. */
export async function probe(context: TargetContext, session: Session): Promise<ExecutionResult> {
  const result = await session.execute({ code: context.target.code, language: context.target.language });
  if (!context.target.check(result)) {
    throw new Error(
      `${context.target.name}: probe \`${context.target.code}\` gave status ${result.status}, ` +
        `result ${JSON.stringify(result.result)}, stdout ${JSON.stringify(result.stdout.slice(0, 200))}, ` +
        `stderr ${JSON.stringify(result.stderr.slice(0, 200))}`,
    );
  }
  return result;
}

interface WarmSamples {
  acquire: number[];
  total: number[];
  execute: number[];
  truncated: boolean;
}

async function warmLoop(context: TargetContext, withExecute: boolean): Promise<WarmSamples> {
  const { batch, rounds, warmupRounds } = context.sizes.warm;
  const samples: WarmSamples = { acquire: [], total: [], execute: [], truncated: false };
  await withPool(context, { readySessionInstances: batch, maxConcurrentSessions: batch }, async (pool) => {
    await pool.start();
    const deadline = performance.now() + context.sizes.loopTimeLimitMs;
    for (let round = 0; round < warmupRounds + rounds; round += 1) {
      const record = round >= warmupRounds;
      const ids = identifiers(batch, 'warm');
      const taken: Session[] = [];
      for (const id of ids) {
        const t0 = performance.now();
        const session = await pool.acquire(id);
        const t1 = performance.now();
        if (withExecute) await probe(context, session);
        const t2 = performance.now();
        taken.push(session);
        if (!record) continue;
        samples.acquire.push(t1 - t0);
        if (withExecute) {
          samples.total.push(t2 - t0);
          samples.execute.push(t2 - t1);
        }
      }
      await Promise.all(taken.map((s) => s.stop()));
      if (performance.now() > deadline && round >= warmupRounds) {
        samples.truncated = round + 1 < warmupRounds + rounds;
        break;
      }
      await waitUntilFull(context, pool, batch);
    }
  });
  return samples;
}

/** Untimed: let the pool refill after a round, then collect garbage so no GC lands in the next. */
async function waitUntilFull(context: TargetContext, pool: SessionPool, n: number): Promise<void> {
  await waitForReady(pool, n, readyTimeoutMs(context, n));
  collectGarbage();
}

const warmDetail = (context: TargetContext, truncated: boolean) => ({
  readyPerRound: context.sizes.warm.batch,
  rounds: context.sizes.warm.rounds,
  ...(truncated ? { stoppedEarly: 'loop time limit' } : {}),
});

export const warmAcquire: Scenario = {
  name: 'warm-acquire',
  description: '(a) acquire of a new identifier from a pool with Ready sessions',
  async run(context) {
    const m = measurementsOf(context, this.name);
    const s = await warmLoop(context, false);
    return [m.latency('acquire', summarize(s.acquire), warmDetail(context, s.truncated))];
  },
};

export const warmExec: Scenario = {
  name: 'warm-exec',
  description: '(b) warm acquire + first execute (1+1, print(1) for Python)',
  async run(context) {
    const m = measurementsOf(context, this.name);
    const s = await warmLoop(context, true);
    const detail = warmDetail(context, s.truncated);
    return [m.latency('acquire+execute', summarize(s.total), detail), m.latency('first execute', summarize(s.execute), detail)];
  },
};

export const executeRoundTrip: Scenario = {
  name: 'execute',
  description: '(c) execute round trip on an allocated session',
  async run(context) {
    const m = measurementsOf(context, this.name);
    const { iterations, warmup } = context.sizes.execute;
    const samples: number[] = [];
    let truncated = false;
    await withPool(context, { readySessionInstances: 1, maxConcurrentSessions: 1 }, async (pool) => {
      await pool.start();
      const [id] = identifiers(1, 'exec');
      const session = await pool.acquire(id!);
      for (let i = 0; i < warmup; i += 1) await probe(context, session);
      collectGarbage();
      const deadline = performance.now() + context.sizes.loopTimeLimitMs;
      for (let i = 0; i < iterations; i += 1) {
        const t0 = performance.now();
        await probe(context, session);
        samples.push(performance.now() - t0);
        if (performance.now() > deadline) {
          truncated = i + 1 < iterations;
          break;
        }
      }
    });
    return [m.latency('execute', summarize(samples), truncated ? { stoppedEarly: 'loop time limit' } : undefined)];
  },
};

export const coldMiss: Scenario = {
  name: 'cold-miss',
  description: '(d) acquire (+ first execute) with readySessionInstances 0: the session is created on demand',
  async run(context) {
    const m = measurementsOf(context, this.name);
    const { iterations, warmup } = context.sizes.cold;
    const acquire: number[] = [];
    const total: number[] = [];
    let truncated = false;
    // maxConcurrentSessions 1 and no Ready target: nothing is ever created in the background.
    await withPool(context, { readySessionInstances: 0, maxConcurrentSessions: 1 }, async (pool) => {
      await pool.start();
      const deadline = performance.now() + context.sizes.loopTimeLimitMs;
      const ids = identifiers(warmup + iterations, 'cold');
      for (const [i, id] of ids.entries()) {
        const t0 = performance.now();
        const session = await pool.acquire(id, { wait: true });
        const t1 = performance.now();
        await probe(context, session);
        const t2 = performance.now();
        await session.stop();
        if (i < warmup) continue;
        acquire.push(t1 - t0);
        total.push(t2 - t0);
        if (performance.now() > deadline) {
          truncated = i + 1 < ids.length;
          break;
        }
      }
    });
    const detail = truncated ? { stoppedEarly: 'loop time limit' } : undefined;
    return [m.latency('acquire', summarize(acquire), detail), m.latency('acquire+execute', summarize(total), detail)];
  },
};
