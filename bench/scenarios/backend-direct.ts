/**
 * The backend alone, without the pool, interleaved with the same operation through the pool:
 * create, first execute on a fresh session, and execute round trips called straight on the
 * Backend contract, each sample followed by its pooled twin. Interleaving matters on a shared
 * host: both halves see the same load, so their difference is the pool's own overhead.
 */

import { randomBytes } from 'node:crypto';

import type { BackendSession, ExecuteRequest, SessionSpec } from '../../src/backend.js';
import { resolvePoolOptions } from '../../src/options.js';
import { collectGarbage, identifiers, readyTimeoutMs, waitForReady, withPool, type TargetContext } from '../pool-helpers.js';
import { summarize } from '../stats.js';
import { probe } from './latency.js';
import { measurementsOf, type Scenario } from './scenario.js';

function specFor(context: TargetContext): SessionSpec {
  // Defaults exactly as a pool resolves them, so the backend sees the same limits.
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
  description: 'the backend without the pool, interleaved with the pool: create, first execute, execute',
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
    // As many first executes as (b) times (capped), or one batch for out-of-process backends.
    const { batch, rounds } = context.sizes.warm;
    const n = context.target.inProcess ? Math.min(500, batch * rounds) : batch;
    const create: number[] = [];
    // Backends that restore from a snapshot say how long the restore itself took (VMBackend.lastStart).
    const restore: number[] = [];
    const lastRestoreMs = (): number | undefined =>
      (backend as { lastStart?: { mode?: string; restoreMs?: number } }).lastStart?.restoreMs;
    const direct = { first: [] as number[], execute: [] as number[] };
    const pooled = { first: [] as number[], execute: [] as number[] };
    const live: BackendSession[] = [];
    try {
      await withPool(context, { readySessionInstances: n, maxConcurrentSessions: n }, async (pool) => {
        await pool.start();
        for (let i = 0; i < n; i += 1) {
          const t0 = performance.now();
          live.push(await backend.create(specFor(context), { onExit: () => {} }));
          create.push(performance.now() - t0);
          const restored = lastRestoreMs();
          if (restored !== undefined) restore.push(restored);
        }
        await waitForReady(pool, n, readyTimeoutMs(context, n));
        // As in the pool's warm path: sessions created earlier, garbage collected, then first use.
        collectGarbage();
        const ids = identifiers(n, 'direct');
        let last: Awaited<ReturnType<typeof pool.acquire>> | undefined;
        for (const [i, session] of live.entries()) {
          const t0 = performance.now();
          await directExecute(context, session, request);
          const t1 = performance.now();
          last = await pool.acquire(ids[i]!);
          await probe(context, last);
          const t2 = performance.now();
          direct.first.push(t1 - t0);
          pooled.first.push(t2 - t1);
        }
        const session = live[live.length - 1]!;
        for (let i = 0; i < context.sizes.execute.warmup; i += 1) {
          await directExecute(context, session, request);
          await probe(context, last!);
        }
        collectGarbage();
        const deadline = performance.now() + context.sizes.loopTimeLimitMs;
        for (let i = 0; i < context.sizes.execute.iterations && performance.now() < deadline; i += 1) {
          const t0 = performance.now();
          await directExecute(context, session, request);
          const t1 = performance.now();
          await probe(context, last!);
          direct.execute.push(t1 - t0);
          pooled.execute.push(performance.now() - t1);
        }
      });
      return [
        m.latency('create', summarize(create)),
        ...(restore.length > 0 ? [m.latency('snapshot restore (start until the guest runs)', summarize(restore))] : []),
        m.latency('first execute', summarize(direct.first)),
        m.latency('pooled acquire+first execute', summarize(pooled.first)),
        m.latency('execute', summarize(direct.execute)),
        m.latency('pooled execute', summarize(pooled.execute)),
      ];
    } finally {
      await Promise.all(live.map((s) => backend.destroy(s, { reason: 'stopped' }).catch(() => undefined)));
    }
  },
};
