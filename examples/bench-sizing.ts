/**
 * Size a pool from measurements on this host: runs the bench for one backend (warm acquire, cold
 * miss, refill rate at several concurrencies, memory per idle session) and recommends
 * `readySessionInstances` and `refillConcurrency` for an arrival rate and a p99 latency target.
 *
 *   node --expose-gc --import tsx examples/bench-sizing.ts BACKEND ARRIVALS_PER_S TARGET_P99_MS [--quick]
 *   e.g. node --expose-gc --import tsx examples/bench-sizing.ts quickjs 200 1
 *
 * The model: every allocation is replaced by a refill that takes `create` ms, so about
 * λ·create sessions are consumed while one is being replaced (Little's law). With Poisson
 * arrivals the count consumed in that window exceeds its mean by at most ~2.33·√mean 99% of the
 * time, so that many Ready sessions keep 99% of acquires warm. The refill concurrency must sustain
 * λ with headroom, or the ready set drains however large it starts.
 */

import { runBench } from '../bench/bench.js';
import { formatBytes, formatMs } from '../bench/stats.js';
import type { BenchReport, Measurement } from '../bench/types.js';

const HEADROOM = 1.25;
const Z99 = 2.33;

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: examples/bench-sizing.ts BACKEND ARRIVALS_PER_S TARGET_P99_MS [--quick]\n`);
  process.exit(2);
}

const args = process.argv.slice(2).filter((a) => a !== '--quick');
const quick = process.argv.includes('--quick');
const [backend, arrivalsText, targetText] = args;
if (backend === undefined || arrivalsText === undefined || targetText === undefined) usage('missing arguments');
const arrivals = Number(arrivalsText);
const targetP99 = Number(targetText);
if (!(arrivals > 0)) usage('ARRIVALS_PER_S must be a positive number');
if (!(targetP99 > 0)) usage('TARGET_P99_MS must be a positive number');

const { report } = await runBench({
  backends: [backend],
  filters: ['warm-acquire', 'cold-miss', 'refill', 'memory'],
  quick,
  // Sizing needs the refill curve, not one point of it.
  sizes: (target, sizes) => ({
    ...sizes,
    refill: { ...sizes.refill, concurrency: target.inProcess ? [1, 4] : [1, 2, 4, 8] },
  }),
});

function pick(r: BenchReport, target: string, scenario: string, metric: string): Measurement | undefined {
  return r.measurements.find((m) => m.target === target && m.scenario === scenario && m.metric === metric);
}

const targets = [...new Set(report.measurements.map((m) => m.target))];
for (const s of report.skipped) process.stdout.write(`skipped ${s.target}${s.scenario ? ` ${s.scenario}` : ''}: ${s.reason}\n`);
if (targets.length === 0) usage(`no measurements for ${backend}: nothing to size from`);

for (const target of targets) {
  const lines: string[] = [`\n== ${target}: ${arrivals} new identifiers/s, p99 allocation ≤ ${formatMs(targetP99)} ==`];
  const warm = pick(report, target, 'warm-acquire', 'acquire')?.stats;
  const cold = pick(report, target, 'cold-miss', 'acquire')?.stats;
  const rates = report.measurements
    .filter((m) => m.target === target && m.scenario === 'refill' && m.metric.startsWith('rate @'))
    .map((m) => ({ concurrency: Number(m.detail?.['refillConcurrency']), rate: m.value ?? 0 }))
    .sort((a, b) => a.concurrency - b.concurrency);
  const perSession = report.measurements.find(
    (m) =>
      m.target === target && m.scenario === 'memory' && (m.metric.startsWith('per session') || m.metric === 'PSS per session'),
  )?.value;
  if (warm === undefined || rates.length === 0) {
    lines.push('not enough measurements (warm acquire and refill are needed)');
    process.stdout.write(`${lines.join('\n')}\n`);
    continue;
  }
  lines.push(
    `measured: warm acquire p99 ${formatMs(warm.p99)}, cold miss p50/p99 ${formatMs(cold?.p50 ?? NaN)}/${formatMs(cold?.p99 ?? NaN)}`,
  );
  lines.push(`refill: ${rates.map((r) => `${r.rate.toFixed(1)}/s @${r.concurrency}`).join(', ')}`);

  if (warm.p99 > targetP99) {
    lines.push(`the target cannot be met: even a warm acquire takes ${formatMs(warm.p99)} at p99 on this host`);
  }
  const best = rates.reduce((a, b) => (b.rate > a.rate ? b : a));
  const enough = rates.find((r) => r.rate >= arrivals * HEADROOM);
  const chosen = enough ?? best;
  if (enough === undefined) {
    lines.push(
      `refill cannot keep up: the best measured rate is ${best.rate.toFixed(1)}/s (@${best.concurrency}), under ${arrivals}/s arriving ` +
        `plus ${Math.round((HEADROOM - 1) * 100)}% headroom; ` +
        'any ready set drains and acquires fall back to cold misses. Spread the load over more hosts or use a faster backend.',
    );
  }
  const createMs = pick(report, target, 'refill', `create @${chosen.concurrency}`)?.stats?.p99 ?? cold?.p99 ?? NaN;
  const coldOk = cold !== undefined && cold.p99 <= targetP99;
  const mean = (arrivals * createMs) / 1000;
  const ready = coldOk ? 0 : Math.max(1, Math.ceil(mean + Z99 * Math.sqrt(mean)));
  lines.push(
    coldOk
      ? `a cold miss (${formatMs(cold.p99)} p99) already meets the target: readySessionInstances can be 0 (keep 1–2 for latency spikes)`
      : `one replacement takes ${formatMs(createMs)} (p99 create @${chosen.concurrency}); ~${mean.toFixed(1)} sessions are consumed meanwhile`,
  );
  lines.push('', 'recommendation:', `  readySessionInstances: ${ready}`, `  refillConcurrency:     ${chosen.concurrency}`);
  if (perSession !== undefined && Number.isFinite(perSession)) {
    lines.push(`  idle memory:           ${formatBytes(ready * perSession)} (${formatBytes(perSession)} per Ready session)`);
  }
  lines.push(
    '',
    `  new SessionPool({ backend, readySessionInstances: ${ready}, refillConcurrency: ${chosen.concurrency}, maxConcurrentSessions: /* allocated peak + ${ready} */ })`,
  );
  process.stdout.write(`${lines.join('\n')}\n`);
}
