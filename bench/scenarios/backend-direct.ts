/**
 * The backend alone, without the pool: create, first execute on a fresh session, and execute
 * round trips, called straight on the Backend contract. Set against (b) and (c) this splits every
 * figure into engine cost and pool overhead, which is what a missed target needs to be explained.
 */

import { randomBytes } from 'node:crypto';

import type { BackendSession, ExecuteRequest, SessionSpec } from '../../src/backend.js';
import { resolvePoolOptions } from '../../src/options.js';
import { collectGarbage, type TargetContext } from '../pool-helpers.js';
import { summarize } from '../stats.js';
import { measurementsOf, type Scenario } from './scenario.js';

function specFor(context: TargetContext): SessionSpec {
  // Defaults exactly as a pool would resolve them, so the backend sees the same limits.
  const options = resolvePoolOptions({ backend: context.backend, containerType: context.target.containerType });
  return {
    sessionId: `bench-direct-${randomBytes(6).toString('hex')}`,
    poolName: 'bench-direct',
    ownerId: `${process.pid}-bench`,
    containerType: options.containerType,
    limits: options.limits,
    network: options.network,
  };
}

async function directExecute(context: TargetContext, session: BackendSession, request: ExecuteRequest): Promise<void> {
  const outcome = await context.backend.execute(session, request);
  if (outcome.status !== 'Succeeded') {
    throw new Error(`backend execute of \`${request.code}\` failed: ${outcome.stderr.slice(0, 200)}`);
  }
}

export const backendDirect: Scenario = {
  name: 'backend-direct',
  description: 'the backend without the pool: create, first execute, execute round trip',
  async run(context) {
    const m = measurementsOf(context, this.name);
    const { backend } = context;
    const limits = resolvePoolOptions({ backend, containerType: context.target.containerType }).limits;
    const request: ExecuteRequest = {
      language: context.target.language,
      code: context.target.code,
      timeoutMs: limits.executionTimeoutSeconds * 1000,
      outputMaxBytes: limits.outputMaxBytes,
    };
    const { sessionId: _unused, ...prepareContext } = specFor(context);
    await backend.prepare?.(prepareContext);
    const { iterations, warmup } = context.sizes.cold;
    const create: number[] = [];
    const first: number[] = [];
    const live: BackendSession[] = [];
    try {
      for (let i = 0; i < warmup + iterations; i += 1) {
        const t0 = performance.now();
        live.push(await backend.create(specFor(context), { onExit: () => {} }));
        if (i >= warmup) create.push(performance.now() - t0);
      }
      // As in the pool's warm path: sessions created earlier, garbage collected, then first use.
      collectGarbage();
      for (const [i, session] of live.entries()) {
        const t0 = performance.now();
        await directExecute(context, session, request);
        if (i >= warmup) first.push(performance.now() - t0);
      }
      const roundTrip: number[] = [];
      const session = live[live.length - 1]!;
      for (let i = 0; i < context.sizes.execute.warmup; i += 1) await directExecute(context, session, request);
      collectGarbage();
      const deadline = performance.now() + context.sizes.loopTimeLimitMs;
      for (let i = 0; i < context.sizes.execute.iterations && performance.now() < deadline; i += 1) {
        const t0 = performance.now();
        await directExecute(context, session, request);
        roundTrip.push(performance.now() - t0);
      }
      return [
        m.latency('create', summarize(create)),
        m.latency('first execute', summarize(first)),
        m.latency('execute', summarize(roundTrip)),
      ];
    } finally {
      await Promise.all(live.map((s) => backend.destroy(s, { reason: 'stopped' }).catch(() => undefined)));
    }
  },
};
