/**
 * Sessions that outlive memory (issue 17), on targets whose backend can pause:
 *
 * - pause and resume of a Python session with numpy, pandas and matplotlib imported and a
 *   DataFrame of `dataFrameMb` in memory (containers; a small variable on VMs). `pause` is the
 *   checkpoint written (the event's duration), `pause() call` adds freeing the sandbox; `resume`
 *   is `session.resume()` with a Ready session waiting (containers) or from nothing (VMs);
 * - `many` sessions paused at once (what the host keeps: count and bytes on disk), and `sample` of
 *   them resumed, each from a Ready session (the pool's refill is not part of the figure);
 * - `forks`: `session.fork()` until the copy answers (VMs: migration into a new QEMU).
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Session } from '../../src/session.js';
import { readyTimeoutMs, waitForReady, withPool } from '../pool-helpers.js';
import { summarize } from '../stats.js';
import type { Measurement } from '../types.js';
import { measurementsOf, type Scenario } from './scenario.js';

const MiB = 2 ** 20;

async function must(session: Session, code: string, expected: unknown): Promise<void> {
  const r = await session.execute({ code, timeoutInSeconds: 200 });
  if (r.status !== 'Succeeded' || (expected !== undefined && r.result !== expected)) {
    throw new Error(`unexpected result of ${JSON.stringify(code.slice(0, 60))}: ${String(r.result)} ${r.stderr.slice(0, 300)}`);
  }
}

export const pause: Scenario = {
  name: 'pause',
  description: 'pause/resume with a DataFrame, many paused sessions, fork (issue 17)',
  async run(context) {
    const m = measurementsOf(context, this.name);
    const sizes = context.sizes.pause;
    const level = context.backend.capabilities.pause ?? 'none';
    if (level === 'none' || context.target.language !== 'python' || sizes.rounds + sizes.many + sizes.forks === 0) return [];
    const results: Measurement[] = [];
    const dataDirectory = mkdtempSync(join(tmpdir(), 'sandpool-bench-pause-'));
    const rows = Math.round((sizes.dataFrameMb * MiB) / 64); // 8 float64 columns
    const memoryMb = level === 'interpreter' ? 512 + 3 * sizes.dataFrameMb : 512;
    const fromReady = level === 'interpreter';
    try {
      await withPool(
        context,
        { readySessionInstances: 2, maxConcurrentSessions: 6, limits: { memoryMb, diskMb: 1024 }, dataDirectory },
        async (pool) => {
          await pool.start();
          const timeout = readyTimeoutMs(context, 2);
          const pauseMs: number[] = [];
          const callMs: number[] = [];
          const resumeMs: number[] = [];
          let bytes = 0;
          for (let round = 0; round < sizes.rounds; round += 1) {
            const session = await pool.acquire(`bench-pause-${round}`);
            const setup =
              rows > 0
                ? `import numpy as np, pandas as pd, matplotlib\ndf = pd.DataFrame(np.random.rand(${rows}, 8))\nx = 41`
                : 'x = 41';
            await must(session, setup, undefined);
            const t0 = performance.now();
            const paused = await session.pause();
            callMs.push(performance.now() - t0);
            pauseMs.push(paused.durationMs);
            bytes = paused.bytes;
            if (fromReady) await waitForReady(pool, 1, timeout);
            const t1 = performance.now();
            await session.resume();
            resumeMs.push(performance.now() - t1);
            await must(session, rows > 0 ? 'int(df.shape[0]) + x' : 'x', rows > 0 ? rows + 41 : 41);
            await session.stop();
          }
          const detail = { dataFrameMb: sizes.dataFrameMb, level, checkpointBytes: bytes };
          if (sizes.rounds > 0) {
            const what = sizes.dataFrameMb > 0 ? ` (${sizes.dataFrameMb} MB DataFrame)` : '';
            results.push(m.latency(`pause${what}`, summarize(pauseMs), detail));
            results.push(m.latency(`pause() call${what}`, summarize(callMs), detail));
            results.push(m.latency(`resume${what}`, summarize(resumeMs), detail));
          }

          const forkMs: number[] = [];
          if (sizes.forks > 0) {
            const source = await pool.acquire('bench-fork-source');
            await must(source, 'x = 41', undefined);
            for (let i = 0; i < sizes.forks; i += 1) {
              if (fromReady) await waitForReady(pool, 1, timeout);
              const t0 = performance.now();
              const fork = await source.fork(`bench-fork-${i}`);
              forkMs.push(performance.now() - t0);
              await must(fork, 'x', 41);
              await fork.stop();
            }
            await source.stop();
            results.push(m.latency('fork', summarize(forkMs), { level }));
          }

          if (sizes.many > 0) {
            const started = performance.now();
            for (let i = 0; i < sizes.many; i += 1) {
              const session = await pool.acquire(`bench-many-${i}`, { wait: true });
              await must(session, `x = ${i}`, undefined);
              await session.pause();
            }
            const stats = pool.stats();
            results.push(
              m.value('paused sessions held', 'sessions', stats.paused, {
                seconds: Math.round((performance.now() - started) / 1000),
              }),
            );
            results.push(m.value('disk per paused session', 'bytes', stats.pausedBytes / Math.max(1, stats.paused)));
            const sampleMs: number[] = [];
            const step = Math.max(1, Math.floor(sizes.many / Math.max(1, sizes.sample)));
            for (let i = 0; i < sizes.many && sampleMs.length < sizes.sample; i += step) {
              const session = pool.get(`bench-many-${i}`)!;
              if (fromReady) await waitForReady(pool, 1, timeout);
              const t0 = performance.now();
              await session.resume();
              sampleMs.push(performance.now() - t0);
              await must(session, 'x', i);
              await session.stop();
            }
            results.push(m.latency(`resume of ${sizes.many} paused`, summarize(sampleMs), { paused: sizes.many }));
          }
        },
      );
    } finally {
      rmSync(dataDirectory, { recursive: true, force: true });
    }
    return results;
  },
};
