/**
 * The bench as a library: `runBench(options)` runs the selected scenarios on every selected target
 * that is available on this host, then the baselines, and returns a report. bench/run.ts (the CLI),
 * examples/bench-sizing.ts and the smoke test in test/bench all call it.
 */

import { mkdir } from 'node:fs/promises';

import type { Backend } from '../src/backend.js';
import { runBaselines } from './baselines.js';
import { machineInfo } from './machine.js';
import { collectGarbage, readyTimeoutMs, withPool, type TargetContext } from './pool-helpers.js';
import { profileWarmExec, type HotFunction } from './profile.js';
import { computeChecks, computeRatios } from './report/analysis.js';
import { backendDirect } from './scenarios/backend-direct.js';
import { burst } from './scenarios/burst.js';
import { cluster } from './scenarios/cluster.js';
import { density } from './scenarios/density.js';
import { coldMiss, executeRoundTrip, probe, warmAcquire, warmEnv, warmExec, warmFloor } from './scenarios/latency.js';
import { memory } from './scenarios/memory.js';
import { pause } from './scenarios/pause.js';
import { refill } from './scenarios/refill.js';
import { steadyChurn } from './scenarios/steady-churn.js';
import type { Scenario } from './scenarios/scenario.js';
import { selectTargets, type BenchTarget, type Sizes } from './targets.js';
import type { BenchReport, Measurement, Skipped } from './types.js';

export const SCENARIOS: readonly Scenario[] = [
  warmAcquire,
  warmExec,
  warmFloor,
  warmEnv,
  executeRoundTrip,
  coldMiss,
  burst,
  refill,
  steadyChurn,
  memory,
  density,
  backendDirect,
  pause,
  cluster,
];

export interface BenchOptions {
  /** Target or backend names (`quickjs`, `container`, `container:python`…); empty = all but `fake`. */
  readonly backends?: readonly string[];
  /** Scenario names (or parts of them); `baseline` selects the baselines. Empty = everything. */
  readonly filters?: readonly string[];
  readonly quick?: boolean;
  /** Memory budget for (h). @default 1 GiB */
  readonly budgetBytes?: number;
  /** Also record a CPU profile of each target's warm acquire + first execute path. */
  readonly profile?: boolean;
  /** Where profiles go. @default bench/results */
  readonly outDir?: string;
  /** Adjust sizes (the smoke test shrinks everything). */
  readonly sizes?: (target: BenchTarget, sizes: Sizes) => Sizes;
  /** Bench these targets instead of the built-in ones (tests use it). */
  readonly targets?: readonly BenchTarget[];
  readonly log?: (message: string) => void;
}

export interface BenchRun {
  readonly report: BenchReport;
  /** Hot functions per profiled target (with `profile`). */
  readonly profiles: ReadonlyMap<string, { hot: readonly HotFunction[]; file: string }>;
}

function selected(name: string, filters: readonly string[]): boolean {
  return filters.length === 0 || filters.some((f) => name.includes(f));
}

/** Load the backend and prove it works end to end: one session, one correct probe. */
async function checkAvailable(context: TargetContext): Promise<void> {
  await withPool(context, { readySessionInstances: 1, maxConcurrentSessions: 1 }, async (pool) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('the first session did not become Ready in time')), readyTimeoutMs(context, 1));
    });
    try {
      await Promise.race([pool.start(), timeout]);
    } finally {
      clearTimeout(timer);
    }
    await probe(context, await pool.acquire('bench-availability-check'));
  });
}

async function benchTarget(
  target: BenchTarget,
  options: Required<Pick<BenchOptions, 'quick' | 'budgetBytes' | 'profile' | 'outDir' | 'log'>> & BenchOptions,
  filters: readonly string[],
  sink: { measurements: Measurement[]; skipped: Skipped[]; profiles: Map<string, { hot: readonly HotFunction[]; file: string }> },
): Promise<void> {
  const { log } = options;
  log(`target ${target.name}`);
  let backend: Backend;
  try {
    backend = await target.load();
  } catch (error) {
    const reason = (error as Error).message;
    log(`  skipped: ${reason}`);
    sink.skipped.push({ target: target.name, reason });
    return;
  }
  const base = options.quick ? target.sizes.quick : target.sizes.full;
  const sizes = options.sizes?.(target, base) ?? base;
  const context: TargetContext = { target, backend, sizes, budgetBytes: options.budgetBytes, log };
  try {
    try {
      await checkAvailable(context);
    } catch (error) {
      const reason = `not usable on this host: ${(error as Error).message}`;
      log(`  skipped: ${reason}`);
      sink.skipped.push({ target: target.name, reason });
      return;
    }
    for (const scenario of SCENARIOS) {
      if (!selected(scenario.name, filters)) continue;
      log(`  ${scenario.name}: ${scenario.description}`);
      const started = performance.now();
      try {
        collectGarbage();
        const results = await scenario.run(context);
        sink.measurements.push(...results);
        log(`    done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      } catch (error) {
        const reason = (error as Error).message;
        log(`    failed: ${reason}`);
        sink.skipped.push({ target: target.name, scenario: scenario.name, reason: `failed: ${reason}` });
      }
    }
    if (options.profile) {
      log('  profile: warm acquire + first execute under the CPU profiler');
      try {
        sink.profiles.set(target.name, await profileWarmExec(context, options.outDir));
      } catch (error) {
        sink.skipped.push({ target: target.name, scenario: 'profile', reason: `failed: ${(error as Error).message}` });
      }
    }
  } finally {
    await backend.close();
  }
}

export async function runBench(input: BenchOptions = {}): Promise<BenchRun> {
  const started = performance.now();
  const machine = machineInfo();
  const options = {
    ...input,
    quick: input.quick ?? false,
    budgetBytes: input.budgetBytes ?? 2 ** 30,
    profile: input.profile ?? false,
    outDir: input.outDir ?? new URL('./results', import.meta.url).pathname,
    log: input.log ?? ((message: string) => process.stderr.write(`${message}\n`)),
  };
  const filters = input.filters ?? [];
  const targets = input.targets ?? selectTargets(input.backends ?? []);
  const unknownFilters = filters.filter((f) => f !== 'baseline' && !SCENARIOS.some((s) => s.name.includes(f)));
  if (unknownFilters.length > 0) {
    throw new Error(
      `unknown scenario ${unknownFilters.join(', ')} (known: ${SCENARIOS.map((s) => s.name).join(', ')}, baseline)`,
    );
  }
  if (options.profile) await mkdir(options.outDir, { recursive: true });
  const sink = {
    measurements: [] as Measurement[],
    skipped: [] as Skipped[],
    profiles: new Map<string, { hot: readonly HotFunction[]; file: string }>(),
  };
  const scenarioFilters = filters.filter((f) => f !== 'baseline');
  const onlyBaselines = filters.length > 0 && scenarioFilters.length === 0;
  if (!onlyBaselines) {
    for (const target of targets) await benchTarget(target, options, scenarioFilters, sink);
  }
  if (filters.length === 0 || filters.includes('baseline')) {
    const baselines = await runBaselines(targets, { quick: options.quick, log: options.log });
    sink.measurements.push(...baselines.measurements);
    sink.skipped.push(...baselines.skipped);
  }
  const report: BenchReport = {
    schema: 'sandpool-bench/1',
    machine,
    options: {
      backends: targets.map((t) => t.name),
      filters,
      quick: options.quick,
      budgetBytes: options.budgetBytes,
      profile: options.profile,
    },
    durationMs: Math.round(performance.now() - started),
    measurements: sink.measurements,
    skipped: sink.skipped,
    ratios: computeRatios(sink.measurements),
    checks: computeChecks(sink.measurements),
  };
  return { report, profiles: sink.profiles };
}
