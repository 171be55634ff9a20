/**
 * (g) Memory per idle Ready session and an estimate of how many fit in a budget (density.ts
 * measures how many a host really holds).
 *
 * In-process backends: V8 heap (`heapUsed`), `external` (which holds WebAssembly memories, i.e.
 * QuickJS heaps) and RSS, after a full GC. isolated-vm isolates have their own V8 heaps, visible
 * only in RSS. Out-of-process backends: PSS of the processes the sessions added (see
 * process-memory.ts), plus this process's own growth.
 *
 * Each measurement uses a fresh backend instance and starts from one live session, so the delta
 * is what N more sessions cost, not the engine's one-time load.
 */

import type { SessionPool } from '../../src/session-pool.js';
import { collectGarbage, readyTimeoutMs, waitForReady, withFreshBackend, withPool, type TargetContext } from '../pool-helpers.js';
import { pidSet, pssBytes, sessionProcesses, ussBytes } from '../process-memory.js';
import type { Measurement } from '../types.js';
import { measurementsOf, type Scenario } from './scenario.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface InProcessSnapshot {
  heapUsed: number;
  external: number;
  rss: number;
}

function inProcessSnapshot(): InProcessSnapshot {
  collectGarbage();
  const usage = process.memoryUsage();
  return { heapUsed: usage.heapUsed, external: usage.external, rss: usage.rss };
}

/** Grow the pool from its current Ready count by `n`, waiting until they are all Ready. */
async function grow(context: TargetContext, pool: SessionPool, n: number): Promise<void> {
  const target = pool.options.readySessionInstances + n;
  pool.update({ readySessionInstances: target });
  await waitForReady(pool, target, readyTimeoutMs(context, n));
}

async function inProcessMemory(context: TargetContext, n: number): Promise<Measurement[]> {
  const m = measurementsOf(context, 'memory');
  return withFreshBackend(context, (fresh) =>
    withPool(fresh, { readySessionInstances: 1, maxConcurrentSessions: n + 1 }, async (pool) => {
      await pool.start();
      await sleep(100);
      const before = inProcessSnapshot();
      await grow(fresh, pool, n);
      await sleep(100);
      const after = inProcessSnapshot();
      const heap = (after.heapUsed - before.heapUsed) / n;
      const external = (after.external - before.external) / n;
      const rss = (after.rss - before.rss) / n;
      const detail = { sessions: n };
      // isolated-vm's isolate heaps show in RSS only; QuickJS's WebAssembly heap in both.
      const perSession = Math.max(heap + external, rss);
      return [
        m.value('heap+external per session', 'bytes', heap + external, detail),
        m.value('V8 heap per session', 'bytes', heap, detail),
        m.value('external per session', 'bytes', external, detail),
        m.value('RSS per session', 'bytes', rss, detail),
        m.value('per session (max of heap+external, RSS)', 'bytes', perSession, detail),
        m.value(
          `sessions in ${context.budgetBytes / 2 ** 20} MiB (estimate)`,
          'sessions',
          Math.floor(context.budgetBytes / perSession),
          {
            basis: 'budget / per-session memory',
          },
        ),
      ];
    }),
  );
}

async function outOfProcessMemory(context: TargetContext, n: number): Promise<Measurement[]> {
  const m = measurementsOf(context, 'memory');
  return withPool(context, { readySessionInstances: 1, maxConcurrentSessions: n + 1 }, async (pool) => {
    await pool.start();
    const known = new Set(pool.sessions().map((s) => s.sessionId));
    const before = pidSet();
    const ownBefore = process.memoryUsage().rss;
    await grow(context, pool, n);
    // Let the new sessions finish starting up (interpreters import, guests settle) before sampling.
    await sleep(2_000);
    const added = pool.sessions().filter((s) => !known.has(s.sessionId));
    const processes = sessionProcesses(
      before,
      added.map((s) => s.etag),
    );
    const pss = processes.reduce((sum, p) => sum + (pssBytes(p.pid) ?? 0), 0);
    const uss = processes.reduce((sum, p) => sum + (ussBytes(p.pid) ?? 0), 0);
    const own = (process.memoryUsage().rss - ownBefore) / n;
    const perSession = pss / n;
    const detail = { sessions: n, processes: processes.length };
    if (processes.length === 0) {
      return [m.value('PSS per session', 'bytes', Number.NaN, { ...detail, note: 'no session processes found' })];
    }
    return [
      m.value('PSS per session', 'bytes', perSession, detail),
      m.value('unique (USS) per session', 'bytes', uss / n, detail),
      m.value('processes per session', 'count', processes.length / n, detail),
      m.value('host RSS per session', 'bytes', own, detail),
      m.value(
        `sessions in ${context.budgetBytes / 2 ** 20} MiB (estimate)`,
        'sessions',
        Math.floor(context.budgetBytes / perSession),
        {
          basis: 'budget / PSS per session',
        },
      ),
    ];
  });
}

export const memory: Scenario = {
  name: 'memory',
  description: '(g) memory per idle Ready session; (h) estimate of sessions in the budget',
  run(context) {
    const n = context.sizes.memory.sessions;
    return context.target.inProcess ? inProcessMemory(context, n) : outOfProcessMemory(context, n);
  },
};
