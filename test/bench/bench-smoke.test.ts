/**
 * Proves the bench still runs end to end (every scenario, the report, chart and comparison) on the
 * fake backend and on QuickJS, with tiny sizes. No timing assertions: speed lives in the bench.
 */

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runBench, SCENARIOS, type BenchRun } from '../../bench/bench.js';
import { pidSet, pssBytes, sessionProcesses } from '../../bench/process-memory.js';
import { renderComparison } from '../../bench/report/compare.js';
import { renderSvg } from '../../bench/report/svg.js';
import { renderMarkdown, renderText } from '../../bench/report/table.js';
import { formatRatio, quantile, summarize } from '../../bench/stats.js';
import { TARGETS, type BenchTarget, type Sizes } from '../../bench/targets.js';
import { etcdAvailable } from '../cluster/harness/etcd.js';
import type { BenchReport, Measurement } from '../../bench/types.js';

const TINY: Sizes = {
  warm: { batch: 3, rounds: 2, warmupRounds: 1 },
  execute: { iterations: 5, warmup: 1 },
  cold: { iterations: 3, warmup: 0 },
  burst: { size: 12, ready: 2, rounds: 1 },
  refill: { count: 5, concurrency: [2] },
  memory: { sessions: 5 },
  hold: { sessions: 20, timeLimitMs: 20_000 },
  density: { max: 0, timeLimitMs: 0, settleMs: 0, stallMs: 0 },
  churn: { startLambda: 20, maxLambda: 40, bisections: 1, durationMs: 500, coverSeconds: 0.2, cooldownSeconds: 0.2 },
  pause: { rounds: 0, dataFrameMb: 0, many: 0, sample: 0, forks: 0 },
  loopTimeLimitMs: 10_000,
};

let outDir: string;
beforeAll(async () => {
  outDir = await mkdtemp(path.join(os.tmpdir(), 'sandpool-bench-'));
});
afterAll(async () => {
  await rm(outDir, { recursive: true, force: true });
});

function find(report: BenchReport, target: string, scenario: string, metric: string): Measurement {
  const m = report.measurements.find((x) => x.target === target && x.scenario === scenario && x.metric === metric);
  if (m === undefined)
    throw new Error(
      `no ${target} ${scenario} ${metric} in ${JSON.stringify(report.measurements.map((x) => `${x.target} ${x.scenario} ${x.metric}`))}`,
    );
  return m;
}

function expectEveryScenario(run: BenchRun, target: string): void {
  const { report } = run;
  // The cluster scenario needs Debian's etcd, which `npm run test:unit` does not install; pause
  // needs a Python target whose backend can pause (containers, VMs), which these targets are not.
  const expected = SCENARIOS.map((s) => s.name).filter((name) => (name !== 'cluster' || etcdAvailable()) && name !== 'pause');
  expect(report.skipped.filter((s) => s.target === target && expected.includes(s.scenario ?? ''))).toEqual([]);
  const scenarios = new Set(report.measurements.filter((m) => m.target === target).map((m) => m.scenario));
  expect([...scenarios].filter((name) => expected.includes(name)).sort()).toEqual(expected.sort());
  expect(find(report, target, 'warm-acquire', 'acquire').stats?.n).toBe(TINY.warm.batch * TINY.warm.rounds);
  expect(find(report, target, 'warm-exec', 'acquire+execute').stats?.n).toBe(TINY.warm.batch * TINY.warm.rounds);
  expect(find(report, target, 'execute', 'execute').stats?.n).toBe(TINY.execute.iterations);
  expect(find(report, target, 'cold-miss', 'acquire+execute').stats?.n).toBe(TINY.cold.iterations);
  const burst = find(report, target, 'burst', 'success rate');
  expect(burst.value).toBe(100);
  expect(burst.detail).toMatchObject({ attempts: TINY.burst.size, succeeded: TINY.burst.size });
  // All but the Ready ones waited for a session created on demand.
  expect(find(report, target, 'burst', 'acquire').detail?.['coldMisses']).toBeGreaterThanOrEqual(
    TINY.burst.size - TINY.burst.ready,
  );
  expect(find(report, target, 'refill', 'rate @2').value).toBeGreaterThan(0);
  expect(find(report, target, 'density', 'idle sessions held').value).toBe(TINY.hold.sessions);
  expect(find(report, target, 'warm-floor', 'acquire+execute').stats?.n).toBe(TINY.warm.batch * TINY.warm.rounds);
  expect(find(report, target, 'warm-env', 'acquire+execute').stats?.n).toBe(TINY.warm.batch * TINY.warm.rounds);
  // Whether λ = startLambda stays warm depends on the machine's load (a step whose arrivals could not
  // be generated on time does not pass); the smoke test checks that a step ran and was judged.
  const warmLambda = find(report, target, 'steady-churn', 'highest warm λ').value ?? -1;
  const judged =
    warmLambda >= TINY.churn.startLambda ||
    report.measurements.some((x) => x.target === target && x.metric === 'acquire at the first failing λ');
  expect(judged, `steady-churn judged no step (highest warm λ ${warmLambda})`).toBe(true);
  for (const m of report.measurements.filter((x) => x.target === target && x.stats !== undefined)) {
    const s = m.stats!;
    expect(s.n, `${m.scenario} ${m.metric}`).toBeGreaterThan(0);
    expect(s.min).toBeLessThanOrEqual(s.p50);
    expect(s.p50).toBeLessThanOrEqual(s.p99);
    expect(s.p99).toBeLessThanOrEqual(s.max);
  }
}

describe('bench smoke', () => {
  it('runs every scenario on the fake backend and renders every output', async () => {
    const run = await runBench({ backends: ['fake'], quick: true, outDir, sizes: () => TINY, log: () => {} });
    expectEveryScenario(run, 'fake');
    const { report } = run;
    expect(report.checks.find((c) => c.target === 'fake' && c.goal.startsWith('burst'))?.met).toBe(true);

    const text = renderText(report);
    expect(text).toContain('== fake ==');
    expect(text).toContain(report.machine.cpuModel);
    expect(renderMarkdown(report)).toContain('| warm-exec | acquire+execute |');
    const svg = renderSvg(report);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('warm-exec · acquire+execute');

    const roundTrip = JSON.parse(JSON.stringify(report)) as BenchReport;
    const comparison = renderComparison(roundTrip, report);
    expect(comparison).toContain('fake warm-exec acquire+execute');
    expect(comparison).toContain('+0.0%');
  }, 60_000);

  it('runs every scenario on QuickJS, with its baseline and target checks', async () => {
    if (!existsSync(new URL('../../backends/quickjs/index.ts', import.meta.url))) return; // not landed yet
    const run = await runBench({ backends: ['quickjs'], quick: true, outDir, sizes: () => TINY, log: () => {} });
    expectEveryScenario(run, 'quickjs');
    const bare = find(run.report, 'baseline', 'bare-quickjs', 'runtime+context+eval');
    expect(bare.stats?.n).toBeGreaterThan(0);
    expect(run.report.ratios.some((r) => r.target === 'quickjs' && r.text.includes('bare QuickJS'))).toBe(true);
    const goals = run.report.checks.filter((c) => c.target === 'quickjs').map((c) => c.goal);
    expect(goals).toEqual(
      expect.arrayContaining([
        expect.stringContaining('refill running, p50 ≤ 0.5× a bare QuickJS'),
        expect.stringContaining('p99 ≤ 5× its p50'),
        expect.stringContaining('steady churn'),
        expect.stringContaining('10,000'),
      ]),
    );
  }, 120_000);

  it('skips an unavailable backend, or one that fails its probe, with a reason', async () => {
    const fake = TARGETS.find((t) => t.name === 'fake')!;
    const targets: BenchTarget[] = [
      { ...fake, name: 'missing', load: () => Promise.reject(new Error('backends/missing is not in this checkout')) },
      // A backend that answers wrongly must not be timed: the availability probe catches it.
      { ...fake, name: 'wrong', check: (r) => r.result === 'something else' },
      fake,
    ];
    const run = await runBench({ targets, filters: ['warm-acquire'], outDir, sizes: () => TINY, log: () => {} });
    expect(run.report.skipped).toEqual([
      { target: 'missing', reason: 'backends/missing is not in this checkout' },
      {
        target: 'wrong',
        reason: expect.stringMatching(/^not usable on this host: .*probe `1\+1` gave status Succeeded, result "1\+1"/),
      },
    ]);
    expect(run.report.measurements.map((m) => `${m.target} ${m.scenario}`)).toEqual(['fake warm-acquire']);
  });

  it('rejects unknown backends and scenarios', async () => {
    await expect(runBench({ backends: ['nope'], log: () => {} })).rejects.toThrow(/unknown backend nope/);
    await expect(runBench({ backends: ['fake'], filters: ['nope'], log: () => {} })).rejects.toThrow(/unknown scenario nope/);
  });
});

describe('bench statistics', () => {
  it('interpolates percentiles and computes the sample deviation', () => {
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    const s = summarize([5, 1, 4, 2, 3]);
    expect(s).toMatchObject({ n: 5, min: 1, max: 5, mean: 3, p50: 3 });
    expect(s.stddev).toBeCloseTo(Math.sqrt(2.5), 10);
    expect(s.p99).toBeCloseTo(4.96, 10);
    expect(summarize([]).n).toBe(0);
    expect(formatRatio(1 / 40)).toBe('1/40');
    expect(formatRatio(3.21)).toBe('3.2×');
  });
});

describe('session process memory', () => {
  it('finds a child process by its resource id and reads its PSS', async () => {
    if (!existsSync('/proc/self/smaps_rollup')) return; // not Linux
    const before = pidSet();
    const id = `bench${Date.now().toString(16)}abcdef`;
    // `exec -a` puts the id on the command line, as conmon carries a container id.
    const child = spawn('bash', ['-c', `exec -a sleeper-${id} sleep 30`], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const found = sessionProcesses(before, [id]);
      expect(found.map((p) => p.pid)).toContain(child.pid);
      expect(pssBytes(child.pid!)).toBeGreaterThan(0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
