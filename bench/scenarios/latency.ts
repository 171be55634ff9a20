/**
 * Latency of the calls a user makes: (a) warm acquire, (b) warm acquire + first execute,
 * (c) execute round trip, (d) cold miss.
 *
 * Warm figures are measured as users run a pool: `maxConcurrentSessions` above the ready set, so
 * every acquire makes the pool start a replacement while the caller goes on to its first execute.
 * Each sample is taken after the pool has refilled (untimed), so it sees the refill its own acquire
 * starts and no other. The old "nothing may refill" set-up (`maxConcurrentSessions` equal to the
 * ready set) stays beside it as `warm-floor`: the engine floor, not the figure users get.
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

/**
 * `batch` Ready sessions; each sample acquires a new identifier and (with `withExecute`) runs the
 * probe on it. `refill`: the pool may replace what is taken, and every sample starts from a full
 * ready set; otherwise nothing can be created while a round is timed (the engine floor).
 */
async function warmLoop(
  context: TargetContext,
  withExecute: boolean,
  refill: boolean,
  env?: Readonly<Record<string, string>>,
): Promise<WarmSamples> {
  const { batch, rounds, warmupRounds } = context.sizes.warm;
  const samples: WarmSamples = { acquire: [], total: [], execute: [], truncated: false };
  // With refill: room for a round of allocated sessions beside a full ready set.
  const maxConcurrentSessions = refill ? 2 * batch + 1 : batch;
  await withPool(context, { readySessionInstances: batch, maxConcurrentSessions }, async (pool) => {
    await pool.start();
    const deadline = performance.now() + context.sizes.loopTimeLimitMs;
    for (let round = 0; round < warmupRounds + rounds; round += 1) {
      const record = round >= warmupRounds;
      const ids = identifiers(batch, 'warm');
      const taken: Session[] = [];
      for (const id of ids) {
        // The sample starts from a full ready set, with no creation in flight.
        if (refill) await waitUntilRefilled(context, pool, batch);
        const t0 = performance.now();
        const session = await pool.acquire(id, env === undefined ? {} : { env });
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

/** Untimed, per sample: the ready set is full again and nothing is being created. */
async function waitUntilRefilled(context: TargetContext, pool: SessionPool, n: number): Promise<void> {
  await waitForReady(pool, n, readyTimeoutMs(context, n));
  for (let i = 0; pool.stats().pending > 0 && i < 10_000; i += 1) await new Promise((r) => setTimeout(r, 1));
}

/** Untimed: let the pool refill after a round, then collect garbage so no GC lands in the next. */
async function waitUntilFull(context: TargetContext, pool: SessionPool, n: number): Promise<void> {
  await waitForReady(pool, n, readyTimeoutMs(context, n));
  collectGarbage();
}

const warmDetail = (context: TargetContext, truncated: boolean, refill: boolean) => ({
  readyPerRound: context.sizes.warm.batch,
  rounds: context.sizes.warm.rounds,
  refill: refill ? 'running' : 'impossible (maxConcurrentSessions = ready set)',
  ...(truncated ? { stoppedEarly: 'loop time limit' } : {}),
});

export const warmAcquire: Scenario = {
  name: 'warm-acquire',
  description: '(a) acquire of a new identifier from a pool with Ready sessions, refill running',
  async run(context) {
    const m = measurementsOf(context, this.name);
    const s = await warmLoop(context, false, true);
    return [m.latency('acquire', summarize(s.acquire), warmDetail(context, s.truncated, true))];
  },
};

export const warmExec: Scenario = {
  name: 'warm-exec',
  description: '(b) warm acquire + first execute (1+1, print(1) for Python), refill running',
  async run(context) {
    const m = measurementsOf(context, this.name);
    const s = await warmLoop(context, true, true);
    const detail = warmDetail(context, s.truncated, true);
    return [m.latency('acquire+execute', summarize(s.total), detail), m.latency('first execute', summarize(s.execute), detail)];
  },
};

export const warmFloor: Scenario = {
  name: 'warm-floor',
  description: '(b) engine floor: warm acquire + first execute when nothing can be refilled',
  async run(context) {
    const m = measurementsOf(context, this.name);
    const s = await warmLoop(context, true, false);
    const detail = warmDetail(context, s.truncated, false);
    return [m.latency('acquire+execute', summarize(s.total), detail), m.latency('first execute', summarize(s.execute), detail)];
  },
};

/** What an agent binds when it claims a session: a key, a region, a user id. */
const BENCH_ENV = Object.freeze({
  OPENAI_API_KEY: `sk-bench-${'x'.repeat(48)}`,
  REGION: 'eu-west-1',
  USER_ID: 'bench-user-0001',
});

export const warmEnv: Scenario = {
  name: 'warm-env',
  description: '(b) warm acquire with env (3 variables bound at claim) + first execute, refill running',
  async run(context) {
    const m = measurementsOf(context, this.name);
    // Backends that cannot bind variables (the fake one) have nothing to measure here.
    if (context.backend.setEnvironment === undefined) return [];
    const s = await warmLoop(context, true, true, BENCH_ENV);
    const detail = { ...warmDetail(context, s.truncated, true), envVariables: Object.keys(BENCH_ENV).length };
    return [m.latency('acquire', summarize(s.acquire), detail), m.latency('acquire+execute', summarize(s.total), detail)];
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
