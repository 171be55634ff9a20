/**
 * (h) Density: the most idle sessions one host really holds, measured, not divided out.
 *
 * - In-process backends: hold `sizes.hold.sessions` idle sessions and report the heap they take
 *   against the budget (issue 6 asked for ≥ 10,000 QuickJS sessions in 1 GiB of heap).
 * - Out-of-process backends: grow the pool's ready set with default options (the host memory
 *   budget included) until it holds `sizes.density.max` sessions, the host's available memory
 *   falls to a floor, creation fails, nothing more is created for a while, or time runs out; say
 *   which. Then report the sessions held, their processes' PSS and unique memory, and what the
 *   host lost per session (MemAvailable, which also counts kernel memory: page tables, cgroups).
 */

import type { SessionPool } from '../../src/session-pool.js';
import { collectGarbage, withFreshBackend, withPool, type TargetContext } from '../pool-helpers.js';
import { ksmState, memAvailableBytes, pidSet, pssBytes, sessionProcesses, ussBytes } from '../process-memory.js';
import type { Measurement } from '../types.js';
import { measurementsOf, type Scenario } from './scenario.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function heapNow(): { heap: number; rss: number } {
  collectGarbage();
  const usage = process.memoryUsage();
  return { heap: usage.heapUsed + usage.external, rss: usage.rss };
}

/**
 * Raise the ready set to `target` and wait until it is reached or `stop()` names a reason to give
 * up; then freeze the pool where it is (no creation in flight) and return the reason, if any.
 */
async function fill(pool: SessionPool, target: number, stop: () => string | undefined): Promise<string | undefined> {
  pool.update({ readySessionInstances: target });
  let reason: string | undefined;
  for (;;) {
    await sleep(250);
    const s = pool.stats();
    if (s.ready >= target) break;
    reason = stop();
    if (reason !== undefined) break;
  }
  const s = pool.stats();
  pool.update({ readySessionInstances: s.ready, maxConcurrentSessions: Math.max(1, s.ready + s.pending) });
  while (pool.stats().pending > 0) await sleep(100);
  return reason;
}

async function inProcessDensity(context: TargetContext): Promise<Measurement[]> {
  const m = measurementsOf(context, 'density');
  const { sessions: target, timeLimitMs } = context.sizes.hold;
  if (target === 0) return [];
  return withFreshBackend(context, (fresh) =>
    withPool(fresh, { readySessionInstances: 1, maxConcurrentSessions: target + 1 }, async (pool) => {
      await pool.start();
      const before = heapNow();
      const t0 = performance.now();
      const stopReason = await fill(pool, target + 1, () => {
        if (performance.now() - t0 > timeLimitMs) return `time limit ${timeLimitMs} ms`;
        if (process.memoryUsage().rss - before.rss > 2 * context.budgetBytes) return 'RSS past twice the budget';
        if (pool.stats().createFailures > 0) return `create failed: ${pool.stats().lastError?.message ?? '?'}`;
        return undefined;
      });
      const fillMs = performance.now() - t0;
      const held = pool.stats().ready - 1;
      await sleep(200);
      const after = heapNow();
      const heap = after.heap - before.heap;
      const detail = {
        target,
        budgetMiB: context.budgetBytes / 2 ** 20,
        fillMs: Math.round(fillMs),
        ...(stopReason === undefined ? {} : { stoppedEarly: stopReason }),
      };
      return [
        m.value('idle sessions held', 'sessions', held, detail),
        m.value('heap+external for them', 'bytes', heap, detail),
        m.value('RSS for them', 'bytes', after.rss - before.rss, detail),
        m.value('fill rate', 'sessions/s', (held * 1000) / fillMs, detail),
        m.value(
          `sessions in ${context.budgetBytes / 2 ** 20} MiB heap`,
          'sessions',
          Math.floor((context.budgetBytes / heap) * held),
          {
            basis: 'budget / measured heap per held session',
          },
        ),
      ];
    }),
  );
}

async function outOfProcessDensity(context: TargetContext): Promise<Measurement[]> {
  const m = measurementsOf(context, 'density');
  const { max, timeLimitMs, settleMs, stallMs } = context.sizes.density;
  if (max === 0) return [];
  const total = memAvailableBytes() === undefined ? undefined : (await import('node:os')).totalmem();
  // Stop well before the host is short of memory: the machine runs other work too.
  const floor = total === undefined ? 0 : Math.max(total * 0.1, 2 * 2 ** 30);
  return withPool(context, { readySessionInstances: 0, maxConcurrentSessions: max + 1 }, async (pool) => {
    await pool.start();
    const pidsBefore = pidSet();
    const availableBefore = memAvailableBytes() ?? 0;
    const t0 = performance.now();
    let lastProgress = t0;
    let lastReady = 0;
    const stopReason = await fill(pool, max, () => {
      const s = pool.stats();
      const now = performance.now();
      if (s.ready > lastReady) {
        lastReady = s.ready;
        lastProgress = now;
      }
      if (now - t0 > timeLimitMs) return `time limit ${timeLimitMs / 1000} s`;
      if ((memAvailableBytes() ?? Number.POSITIVE_INFINITY) < floor)
        return `host memory floor (${Math.round(floor / 2 ** 20)} MiB available)`;
      if (s.createFailures > 0) return `create failed: ${s.lastError?.message.slice(0, 120) ?? '?'}`;
      if (now - lastProgress > stallMs)
        return `no session created for ${stallMs / 1000} s (pending ${s.pending}, waiting on the host budget?)`;
      return undefined;
    });
    const fillMs = performance.now() - t0;
    // Let the sessions settle (interpreters finish starting, KSM scans) before measuring.
    await sleep(settleMs);
    const held = pool.stats().ready;
    const processes = sessionProcesses(
      pidsBefore,
      pool.sessions().map((s) => s.etag ?? ''),
    );
    const pss = processes.reduce((sum, p) => sum + (pssBytes(p.pid) ?? 0), 0);
    const uss = processes.reduce((sum, p) => sum + (ussBytes(p.pid) ?? 0), 0);
    const hostCost = availableBefore - (memAvailableBytes() ?? availableBefore);
    const ksm = ksmState();
    const detail = {
      cap: max,
      fillSeconds: Math.round(fillMs / 100) / 10,
      processes: processes.length,
      ...(ksm === undefined ? {} : { ksm: ksm.run === 1 ? 'on' : 'off', ksmPagesSharing: ksm.pagesSharing }),
      ...(stopReason === undefined ? { stoppedAt: 'cap' } : { stoppedAt: stopReason }),
    };
    const per = (bytes: number) => (held === 0 ? Number.NaN : bytes / held);
    return [
      m.value('idle sessions held', 'sessions', held, detail),
      m.value('fill rate', 'sessions/s', (held * 1000) / fillMs, detail),
      m.value('PSS per held session', 'bytes', per(pss), detail),
      m.value('unique (USS) per held session', 'bytes', per(uss), detail),
      m.value('host memory per held session (MemAvailable drop)', 'bytes', per(hostCost), detail),
    ];
  });
}

export const density: Scenario = {
  name: 'density',
  description: '(h) the most idle sessions this host holds, measured',
  run(context) {
    return context.target.inProcess ? inProcessDensity(context) : outOfProcessDensity(context);
  },
};
