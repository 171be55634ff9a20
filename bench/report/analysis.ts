/**
 * Ratios against baselines and peers, and the target checks of issue 6 §3, computed from a run's
 * measurements. A figure that was not measured (backend unavailable, filtered out) yields nothing.
 */

import { formatMs, formatRatio, formatValue } from '../stats.js';
import type { Measurement, Ratio, TargetCheck } from '../types.js';
import { computePauseChecks } from './pause-checks.js';

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
    const floor = p50(find(measurements, target, 'warm-floor', 'acquire+execute'));
    if (floor !== undefined && floor > 0) {
      ratios.push({
        target,
        value: warm / floor,
        text: `warm acquire+execute with refill running (${formatMs(warm)}) is ${formatRatio(warm / floor)}${warm < floor ? ' of' : ''} the engine floor, where nothing can refill (${formatMs(floor)})`,
      });
    }
    const withEnv = p50(find(measurements, target, 'warm-env', 'acquire+execute'));
    if (withEnv !== undefined && warm > 0) {
      ratios.push({
        target,
        value: withEnv / warm,
        text: `warm acquire with env bound at claim + first execute (${formatMs(withEnv)}) is ${formatRatio(withEnv / warm)}${withEnv < warm ? ' of' : ''} the same without env (${formatMs(warm)})`,
      });
    }
    const later = p50(find(measurements, target, 'execute', 'execute'));
    if (later !== undefined && later > 0) {
      ratios.push({
        target,
        value: warm / later,
        text: `warm acquire+first execute (${formatMs(warm)}) is ${formatRatio(warm / later)}${warm < later ? ' of' : ''} a later execute on the same session (${formatMs(later)})`,
      });
    }
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

const MiB = 2 ** 20;

/** The best (highest) value among a target's metrics of one scenario whose name starts with `prefix`. */
function best(measurements: readonly Measurement[], target: string, scenario: string, prefix: string): Measurement | undefined {
  return measurements
    .filter((m) => m.target === target && m.scenario === scenario && m.metric.startsWith(prefix) && m.value !== undefined)
    .sort((a, b) => b.value! - a.value!)[0];
}

/** The targets of issue 13, as ratios within this run (plus the burst and QuickJS capacity goals kept from issue 6). */
export function computeChecks(measurements: readonly Measurement[]): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const check = (target: string, goal: string, measured: string, met: boolean, gap?: string): void => {
    checks.push({ target, goal, measured, met, gap: met ? undefined : gap });
  };
  const warm = (target: string) => find(measurements, target, 'warm-exec', 'acquire+execute')?.stats;

  // In-process: warm (refill running) against creating a bare engine on the spot.
  for (const [target, bareScenario, what] of [
    ['quickjs', 'bare-quickjs', 'a bare QuickJS runtime+context+eval'],
    ['isolated-vm', 'bare-isolated-vm', 'a bare isolate+context+eval'],
  ] as const) {
    const w = warm(target);
    const bare = p50(find(measurements, 'baseline', bareScenario, metricOf(bareScenario)));
    if (w !== undefined && w.n > 0 && bare !== undefined) {
      const ratio = w.p50 / bare;
      check(
        target,
        `warm acquire+first execute, refill running, p50 ≤ 0.5× ${what}`,
        `${formatRatio(ratio)} (${formatMs(w.p50)} vs ${formatMs(bare)})`,
        ratio <= 0.5,
        `${(ratio / 0.5).toFixed(1)}× the allowed ratio`,
      );
    }
    if (w !== undefined && w.n > 0) {
      const tail = w.p99 / w.p50;
      check(
        target,
        'warm acquire+first execute p99 ≤ 5× its p50',
        `${formatRatio(tail)} (p99 ${formatMs(w.p99)}, p50 ${formatMs(w.p50)})`,
        tail <= 5,
        `${(tail / 5).toFixed(1)}× the allowed ratio`,
      );
    }
  }

  // Containers (Python).
  const py = 'container:python';
  const pyWarm = warm(py);
  const pyExec = p50(find(measurements, py, 'execute', 'execute'));
  if (pyWarm !== undefined && pyWarm.n > 0 && pyExec !== undefined) {
    const ratio = pyWarm.p50 / pyExec;
    check(
      py,
      'warm acquire+first execute, refill running, p50 ≤ 1.5× a later execute',
      `${formatRatio(ratio)} (${formatMs(pyWarm.p50)} vs ${formatMs(pyExec)})`,
      ratio <= 1.5,
      `${(ratio / 1.5).toFixed(1)}× the allowed ratio`,
    );
  }
  for (const target of [py, 'vm:python']) {
    const rate = best(measurements, target, 'refill', 'rate @');
    if (rate?.value !== undefined) {
      check(
        target,
        'refill ≥ 10 sessions/s',
        `${formatValue(rate.value, 'sessions/s')} (${rate.metric})`,
        rate.value >= 10,
        `${(10 / rate.value).toFixed(1)}× too slow`,
      );
    }
  }
  const burstP99 = find(measurements, py, 'burst', 'acquire+execute')?.stats;
  if (burstP99 !== undefined && burstP99.n > 0) {
    const size = find(measurements, py, 'burst', 'acquire+execute')?.detail?.['burst'];
    check(
      py,
      `burst of ${String(size ?? '?')} against 10 Ready: acquire+execute p99 ≤ 10 s`,
      formatMs(burstP99.p99),
      burstP99.p99 <= 10_000,
      over(burstP99.p99, 10_000),
    );
  }
  const pyPss = find(measurements, py, 'memory', 'PSS per session')?.value;
  if (pyPss !== undefined) {
    check(
      py,
      'an idle session ≤ 25 MiB (PSS)',
      formatValue(pyPss, 'bytes'),
      pyPss <= 25 * MiB,
      `${(pyPss / (25 * MiB)).toFixed(1)}× the target`,
    );
  }
  const held = find(measurements, py, 'density', 'idle sessions held');
  if (held?.value !== undefined) {
    check(
      py,
      '≥ 500 idle Python sessions held on this host',
      `${formatValue(held.value, 'sessions')} (stopped at: ${String(held.detail?.['stoppedAt'] ?? '?')})`,
      held.value >= 500,
      `${500 - held.value} short`,
    );
  }

  // VMs.
  const restore = find(measurements, 'vm:python', 'backend-direct', 'snapshot restore (start until the guest runs)')?.stats;
  if (restore !== undefined && restore.n > 0) {
    check('vm:python', 'a snapshot restore ≤ 100 ms (p50)', formatMs(restore.p50), restore.p50 <= 100, over(restore.p50, 100));
  }
  const vmUss = find(measurements, 'vm:python', 'memory', 'unique (USS) per session')?.value;
  if (vmUss !== undefined) {
    check(
      'vm:python',
      'an idle session ≤ 64 MiB unique',
      formatValue(vmUss, 'bytes'),
      vmUss <= 64 * MiB,
      `${(vmUss / (64 * MiB)).toFixed(1)}× the target`,
    );
  }

  // Steady churn: published for every target; the container backend sustains ≥ 5/s.
  for (const m of measurements) {
    if (m.scenario !== 'steady-churn' || m.metric !== 'highest warm λ' || m.value === undefined) continue;
    const goal = m.target === py ? 5 : 0;
    check(
      m.target,
      goal > 0
        ? `steady churn: ≥ ${goal} new identifiers/s with acquire p99 ≤ 50 ms`
        : 'steady churn: highest λ with acquire p99 ≤ 50 ms (published)',
      formatValue(m.value, 'sessions/s'),
      m.value >= goal && m.value > 0,
      goal > 0 ? `${(goal / Math.max(m.value, 0.01)).toFixed(1)}× too low` : 'no step passed',
    );
  }

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
  const qjsHeld = find(measurements, 'quickjs', 'density', 'idle sessions held');
  const heap = find(measurements, 'quickjs', 'density', 'heap+external for them');
  const fit = measurements.find((m) => m.target === 'quickjs' && m.scenario === 'density' && m.metric.startsWith('sessions in'));
  if (qjsHeld?.value !== undefined && heap?.value !== undefined && fit?.value !== undefined) {
    const budget = Number(qjsHeld.detail?.['budgetMiB'] ?? 1024) * MiB;
    const heldAll = qjsHeld.value >= 10_000 && heap.value <= budget;
    const met = heldAll || fit.value >= 10_000;
    checks.push({
      target: 'quickjs',
      goal: `≥ 10,000 idle sessions in ${budget / MiB} MiB of heap`,
      measured:
        `${formatValue(qjsHeld.value, 'sessions')} held in ${formatValue(heap.value, 'bytes')} ` +
        (qjsHeld.value >= 10_000 ? '' : `(extrapolated: ${formatValue(fit.value, 'sessions')} fit)`),
      met,
      gap: met ? undefined : `only ${formatValue(fit.value, 'sessions')} fit`,
    });
  }
  checks.push(...computePauseChecks(measurements));
  return checks;
}
