/**
 * Ratios against baselines and peers, and the target checks of issue 6 §3, computed from a run's
 * measurements. A figure that was not measured (backend unavailable, filtered out) yields nothing.
 */

import { formatMs, formatRatio, formatValue } from '../stats.js';
import type { Measurement, Ratio, TargetCheck } from '../types.js';

export function find(
  measurements: readonly Measurement[],
  target: string,
  scenario: string,
  metric: string,
): Measurement | undefined {
  return measurements.find((m) => m.target === target && m.scenario === scenario && m.metric === metric);
}

const p50 = (m: Measurement | undefined): number | undefined =>
  m?.stats !== undefined && m.stats.n > 0 ? m.stats.p50 : undefined;

/** Published peer figures for create/claim → first command, p50 (shared/reference/peers.md §3.1). */
const PEERS = [
  { name: 'k8s agent-sandbox warm-pool claim', p50: 92 },
  { name: 'Daytona create→first command', p50: 186 },
  { name: 'E2B create→first command', p50: 491 },
] as const;

/** Which baseline each target's warm acquire+execute is set against. */
const BASELINES_OF: Record<string, readonly { scenario: string; what: string }[]> = {
  quickjs: [{ scenario: 'bare-quickjs', what: 'a bare QuickJS runtime+context+eval' }],
  'isolated-vm': [{ scenario: 'bare-isolated-vm', what: 'a bare isolated-vm isolate+context+eval' }],
  'container:python': [
    { scenario: 'podman-run', what: '`podman run --rm IMAGE true`' },
    { scenario: 'python3', what: 'a bare `python3 -c pass`' },
  ],
  'container:javascript': [
    { scenario: 'podman-run', what: '`podman run --rm IMAGE true`' },
    { scenario: 'node', what: 'a bare `node -e 0`' },
  ],
  'vm:python': [
    { scenario: 'qemu-boot', what: 'a QEMU boot to agent ready' },
    { scenario: 'python3', what: 'a bare `python3 -c pass`' },
  ],
};

export function computeRatios(measurements: readonly Measurement[]): Ratio[] {
  const ratios: Ratio[] = [];
  const targets = [...new Set(measurements.map((m) => m.target))].filter((t) => t !== 'baseline');
  for (const target of targets) {
    const warm = p50(find(measurements, target, 'warm-exec', 'acquire+execute'));
    if (warm === undefined) continue;
    const add = (other: number | undefined, what: string): void => {
      if (other === undefined || other <= 0) return;
      const value = warm / other;
      ratios.push({
        target,
        value,
        text: `warm acquire+execute (${formatMs(warm)}) is ${formatRatio(value)}${value < 1 ? ' of' : ''} ${what} (${formatMs(other)})`,
      });
    };
    for (const b of BASELINES_OF[target] ?? [])
      add(p50(find(measurements, 'baseline', b.scenario, metricOf(b.scenario))), b.what);
    const cold = p50(find(measurements, target, 'cold-miss', 'acquire+execute'));
    // Under the vm backend a cold miss is a QEMU boot: the baseline the pool hides.
    add(
      cold,
      target.startsWith('vm') ? 'a cold miss (snapshot restore or boot + first execute)' : 'a cold miss (created on demand)',
    );
    for (const peer of PEERS) add(peer.p50, `${peer.name} p50 (peers.md §3.1)`);
    // backend-direct interleaves each direct call with its pooled twin: the difference is the pool's.
    const split = (pooledMetric: string, directMetric: string, what: string): void => {
      const pooled = p50(find(measurements, target, 'backend-direct', pooledMetric));
      const raw = p50(find(measurements, target, 'backend-direct', directMetric));
      if (pooled === undefined || raw === undefined) return;
      const verdict = pooled > raw ? `the pool adds ${formatMs(pooled - raw)}` : 'no measurable pool overhead';
      ratios.push({
        target,
        value: pooled / raw,
        text: `${what}: pooled ${formatMs(pooled)} vs backend direct ${formatMs(raw)}, interleaved: ${verdict}`,
      });
    };
    split('pooled acquire+first execute', 'first execute', 'warm acquire+first execute');
    split('pooled execute', 'execute', 'execute round trip');
    const bare = BASELINES_OF[target]?.[0];
    const bareP50 = bare === undefined ? undefined : p50(find(measurements, 'baseline', bare.scenario, metricOf(bare.scenario)));
    if (cold !== undefined && bareP50 !== undefined && bare !== undefined) {
      ratios.push({
        target,
        value: cold / bareP50,
        text: `cold miss (${formatMs(cold)}) costs ${formatRatio(cold / bareP50)}${cold < bareP50 ? ' of' : ''} ${bare.what} (${formatMs(bareP50)})`,
      });
    }
  }
  return ratios;
}

const METRIC_OF: Record<string, string> = {
  'bare-quickjs': 'runtime+context+eval',
  'bare-isolated-vm': 'isolate+context+eval',
  'podman-run': 'podman run --rm IMAGE true',
  python3: 'python3 -c pass',
  node: 'node -e 0',
  'qemu-boot': 'QEMU boot to agent ready (VMBackend, snapshots off)',
};
function metricOf(scenario: string): string {
  return METRIC_OF[scenario] ?? scenario;
}

/** `measured / goal` as "2.3× the target" for a miss. */
const over = (measured: number, goal: number): string =>
  `${(measured / goal).toFixed(1)}× the target (${formatMs(measured - goal)} over)`;

export function computeChecks(measurements: readonly Measurement[]): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const latencyGoal = (target: string, goalMs: number): void => {
    const warm = p50(find(measurements, target, 'warm-exec', 'acquire+execute'));
    if (warm === undefined) return;
    const met = warm <= goalMs;
    checks.push({
      target,
      goal: `warm acquire+first execute p50 ≤ ${formatMs(goalMs)}`,
      measured: formatMs(warm),
      met,
      gap: met ? undefined : over(warm, goalMs),
    });
  };
  latencyGoal('quickjs', 0.1);
  const qjs = p50(find(measurements, 'quickjs', 'warm-exec', 'acquire+execute'));
  const bare = p50(find(measurements, 'baseline', 'bare-quickjs', 'runtime+context+eval'));
  if (qjs !== undefined && bare !== undefined) {
    const met = qjs <= bare / 5;
    checks.push({
      target: 'quickjs',
      goal: 'warm acquire+first execute ≤ 1/5 of a bare runtime creation',
      measured: `${formatRatio(qjs / bare)} (${formatMs(qjs)} vs ${formatMs(bare)})`,
      met,
      gap: met ? undefined : `${((qjs / bare) * 5).toFixed(1)}× the allowed fraction`,
    });
  }
  latencyGoal('isolated-vm', 0.5);
  latencyGoal('container:python', 5);
  latencyGoal('vm:python', 10);
  for (const m of measurements) {
    if (m.scenario !== 'burst' || m.metric !== 'success rate' || m.value === undefined) continue;
    const met = m.value >= 100;
    checks.push({
      target: m.target,
      goal: 'burst: 100% of acquires + first executes succeed',
      measured: `${formatValue(m.value, 'percent')} of ${String(m.detail?.['attempts'] ?? '?')}`,
      met,
      gap: met ? undefined : `${String(Number(m.detail?.['attempts'] ?? 0) - Number(m.detail?.['succeeded'] ?? 0))} failed`,
    });
  }
  const held = find(measurements, 'quickjs', 'capacity', 'idle sessions held');
  const heap = find(measurements, 'quickjs', 'capacity', 'heap+external for them');
  const fit = measurements.find((m) => m.target === 'quickjs' && m.scenario === 'capacity' && m.metric.startsWith('sessions in'));
  if (held?.value !== undefined && heap?.value !== undefined && fit?.value !== undefined) {
    const budget = Number(held.detail?.['budgetMiB'] ?? 1024) * 2 ** 20;
    const heldAll = held.value >= 10_000 && heap.value <= budget;
    const met = heldAll || fit.value >= 10_000;
    checks.push({
      target: 'quickjs',
      goal: `≥ 10,000 idle sessions in ${budget / 2 ** 20} MiB of heap`,
      measured:
        `${formatValue(held.value, 'sessions')} held in ${formatValue(heap.value, 'bytes')} ` +
        (held.value >= 10_000 ? '' : `(extrapolated: ${formatValue(fit.value, 'sessions')} fit)`),
      met,
      gap: met ? undefined : `only ${formatValue(fit.value, 'sessions')} fit`,
    });
  }
  return checks;
}
