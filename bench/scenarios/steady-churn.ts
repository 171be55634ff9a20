/**
 * Steady churn: new identifiers arrive at a rate λ (Poisson arrivals, seeded), each runs three
 * executions and then idles until a short cooldown destroys it — the shape of real traffic, where
 * sessions are taken, used, reaped and replaced all at once. One step holds λ for a while and
 * passes when every arrival got a session and acquire p99 stayed warm (≤ 50 ms). λ doubles from a
 * per-target start until a step fails, then is bisected between the last pass and the failure.
 * Reports the highest passing λ and the live sessions the pool held at it.
 */

import type { Session } from '../../src/session.js';
import { identifiers, withPool, type TargetContext } from '../pool-helpers.js';
import { summarize } from '../stats.js';
import type { Measurement } from '../types.js';
import { probe } from './latency.js';
import { measurementsOf, type Scenario } from './scenario.js';

/** Acquire p99 at or under this is "warm". */
export const WARM_P99_MS = 50;

interface StepResult {
  readonly lambda: number;
  /** Arrivals per second the generator really issued. */
  readonly achieved: number;
  readonly arrivals: number;
  readonly failures: number;
  readonly acquire: number[];
  readonly total: number[];
  /** Live sessions (pending + ready + allocated), sampled every 100 ms during the step. */
  readonly live: number[];
  readonly passed: boolean;
}

/** A small seeded PRNG (mulberry32): the same arrival times in every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

async function step(context: TargetContext, lambda: number): Promise<StepResult> {
  const { durationMs, coverSeconds, cooldownSeconds } = context.sizes.churn;
  const arrivals = Math.max(1, Math.round((lambda * durationMs) / 1000));
  // A ready set covering `coverSeconds` of arrivals, as a user would size it; room for every
  // session alive during its cooldown on top.
  const ready = Math.max(2, Math.ceil(lambda * coverSeconds));
  const maxConcurrentSessions = Math.ceil(ready + lambda * (cooldownSeconds + 2) * 2 + 10);
  const acquire: number[] = [];
  const total: number[] = [];
  const live: number[] = [];
  let failures = 0;
  let achieved = 0;
  let issuedMs = 0;
  let scheduledMs = 0;
  await withPool(
    context,
    { readySessionInstances: ready, maxConcurrentSessions, cooldownPeriodInSeconds: cooldownSeconds },
    async (pool) => {
      await pool.start();
      const next = random(Math.round(lambda * 1000));
      const ids = identifiers(arrivals, 'churn');
      const sampler = setInterval(() => {
        const s = pool.stats();
        live.push(s.pending + s.ready + s.allocated);
      }, 100);
      const started = performance.now();
      let at = 0;
      const work: Promise<void>[] = [];
      try {
        for (const id of ids) {
          at += (-Math.log(1 - next()) / lambda) * 1000;
          // Timers fire no sooner than a millisecond: arrivals due within one go out together.
          const wait = started + at - performance.now();
          if (wait >= 1) await sleep(wait);
          work.push(
            (async () => {
              const t0 = performance.now();
              try {
                const session: Session = await pool.acquire(id, { wait: true, timeoutMs: 60_000 });
                acquire.push(performance.now() - t0);
                for (let i = 0; i < 3; i += 1) await probe(context, session);
                total.push(performance.now() - t0);
              } catch {
                failures += 1;
              }
            })(),
          );
        }
        issuedMs = performance.now() - started;
        scheduledMs = at;
        achieved = (arrivals * 1000) / issuedMs;
        await Promise.all(work);
      } finally {
        clearInterval(sampler);
      }
    },
  );
  const p99 = summarize(acquire).p99;
  // A generator that could not keep up (this process's own event loop) did not test λ. It is judged
  // against its own schedule: the realised rate of a short Poisson run differs from λ by chance
  // (30 arrivals: ±18 %), which once failed steps whose acquires were all warm.
  const kept = issuedMs <= scheduledMs * 1.1 + 50;
  return { lambda, achieved, arrivals, failures, acquire, total, live, passed: kept && failures === 0 && p99 <= WARM_P99_MS };
}

export const steadyChurn: Scenario = {
  name: 'steady-churn',
  description: 'steady churn: the highest arrival rate λ at which acquire p99 stays ≤ 50 ms',
  async run(context) {
    const m = measurementsOf(context, this.name);
    const { startLambda, maxLambda, bisections } = context.sizes.churn;
    const steps: StepResult[] = [];
    let pass: StepResult | undefined;
    let fail: StepResult | undefined;
    for (let lambda = startLambda; lambda <= maxLambda; lambda *= 2) {
      const result = await step(context, lambda);
      steps.push(result);
      context.log(
        `    λ ${lambda}/s (issued ${result.achieved.toFixed(0)}/s): acquire p99 ${summarize(result.acquire).p99.toFixed(1)} ms, ${result.failures} failed`,
      );
      if (!result.passed) {
        fail = result;
        break;
      }
      pass = result;
    }
    for (let i = 0; i < bisections && pass !== undefined && fail !== undefined; i += 1) {
      const lambda = Math.round(((pass.lambda + fail.lambda) / 2) * 100) / 100;
      if (lambda <= pass.lambda || lambda >= fail.lambda) break;
      const result = await step(context, lambda);
      steps.push(result);
      context.log(`    λ ${lambda}/s: acquire p99 ${summarize(result.acquire).p99.toFixed(1)} ms, ${result.failures} failed`);
      if (result.passed) pass = result;
      else fail = result;
    }
    const out: Measurement[] = [];
    const detail = (r: StepResult) => ({
      lambda: r.lambda,
      issuedPerSecond: Math.round(r.achieved * 10) / 10,
      arrivals: r.arrivals,
      failed: r.failures,
      stepSeconds: context.sizes.churn.durationMs / 1000,
      cooldownSeconds: context.sizes.churn.cooldownSeconds,
    });
    if (pass !== undefined) {
      out.push(m.value('highest warm λ', 'sessions/s', pass.lambda, { ...detail(pass), warmP99Ms: WARM_P99_MS }));
      out.push(m.value('live sessions at that λ', 'sessions', summarize(pass.live).p50, detail(pass)));
      out.push(m.latency('acquire at that λ', summarize(pass.acquire), detail(pass)));
      out.push(m.latency('acquire+3 executes at that λ', summarize(pass.total), detail(pass)));
    } else {
      out.push(m.value('highest warm λ', 'sessions/s', 0, { below: startLambda, warmP99Ms: WARM_P99_MS }));
    }
    if (fail !== undefined) out.push(m.latency('acquire at the first failing λ', summarize(fail.acquire), detail(fail)));
    return out;
  },
};
