/**
 * `--profile`: record a V8 CPU profile around a scenario (the same data as `node --cpu-prof`),
 * save it as a .cpuprofile (open it in Chrome DevTools) and summarise the hottest functions by
 * self time, which is what RESULTS.md quotes when a target is missed.
 */

import { Session } from 'node:inspector/promises';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';

import { collectGarbage, identifiers, readyTimeoutMs, waitForReady, withPool, type TargetContext } from './pool-helpers.js';
import { probe } from './scenarios/latency.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

export interface HotFunction {
  readonly name: string;
  readonly location: string;
  readonly selfMs: number;
  readonly percent: number;
}

/** Self time per function (summed over the call sites V8 keeps apart), hottest first. */
export function hotFunctions(profile: CpuProfile, limit: number): HotFunction[] {
  const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, { name: string; location: string; us: number }>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let total = 0;
  for (let i = 0; i < samples.length; i += 1) {
    const node = byNode.get(samples[i]!);
    // A sample's time is the gap to the next one.
    const us = deltas[i + 1] ?? 0;
    if (node === undefined) continue;
    total += us;
    const frame = node.callFrame;
    const name = frame.functionName || '(anonymous)';
    const file = frame.url === '' ? '' : frame.url.replace(/^file:\/\//, '').replace(`${process.cwd()}/`, '');
    const location = file === '' ? '' : `${file}:${frame.lineNumber + 1}`;
    const key = `${name}@${location}`;
    const entry = self.get(key) ?? { name, location, us: 0 };
    entry.us += us;
    self.set(key, entry);
  }
  return [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, limit)
    .map((e) => ({ name: e.name, location: e.location, selfMs: e.us / 1000, percent: total === 0 ? 0 : (100 * e.us) / total }));
}

/** Run `body` under the CPU profiler; the profile goes to `outDir/<label>.cpuprofile`. */
export async function profiled<T>(
  label: string,
  outDir: string,
  body: () => Promise<T>,
): Promise<{ result: T; hot: HotFunction[]; file: string }> {
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    // 100 µs sampling: sub-millisecond scenarios need finer samples than the 1 ms default.
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
    const result = await body();
    const { profile } = (await session.post('Profiler.stop')) as { profile: CpuProfile };
    const file = path.join(outDir, `${label.replace(/[^a-zA-Z0-9.-]+/g, '_')}.cpuprofile`);
    await writeFile(file, JSON.stringify(profile));
    return { result, hot: hotFunctions(profile, 15), file };
  } finally {
    session.disconnect();
  }
}

/**
 * Profile exactly the path issue 13 sets targets for, warm acquire + first execute as users run it:
 * the pool may refill (`maxConcurrentSessions` above the ready set), and each sample starts from a
 * full ready set, so the profile holds the caller's path and the refill it starts, nothing else.
 */
export async function profileWarmExec(context: TargetContext, outDir: string): Promise<{ hot: HotFunction[]; file: string }> {
  const { batch, rounds } = context.sizes.warm;
  const n = Math.min(1000, batch * rounds);
  return withPool(context, { readySessionInstances: batch, maxConcurrentSessions: 2 * batch + 1 }, async (pool) => {
    await pool.start();
    // Warm the JIT on the same path first, then refill, untimed.
    const [warmId] = identifiers(1, 'profile-warmup');
    const warm = await pool.acquire(warmId!);
    await probe(context, warm);
    await warm.stop();
    await waitForReady(pool, batch, readyTimeoutMs(context, batch));
    collectGarbage();
    const ids = identifiers(n, 'profile');
    const { hot, file } = await profiled(`${context.target.name}-warm-exec`, outDir, async () => {
      const taken = [];
      for (const id of ids) {
        await waitForReady(pool, batch, readyTimeoutMs(context, batch));
        const session = await pool.acquire(id);
        await probe(context, session);
        taken.push(session);
        if (taken.length === batch) await Promise.all(taken.splice(0).map((s) => s.stop()));
      }
      await Promise.all(taken.map((s) => s.stop()));
    });
    return { hot, file };
  });
}
