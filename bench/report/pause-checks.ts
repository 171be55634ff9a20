/** The targets of issue 17 (sessions that outlive memory), checked from a run's pause figures. */

import type { Measurement, TargetCheck } from '../types.js';

const formatMs = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);

function latency(measurements: readonly Measurement[], target: string, prefix: string): Measurement | undefined {
  return measurements.find(
    (m) => m.target === target && m.scenario === 'pause' && m.metric.startsWith(prefix) && m.stats !== undefined && m.stats.n > 0,
  );
}

export function computePauseChecks(measurements: readonly Measurement[]): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const check = (target: string, goal: string, m: Measurement | undefined, stat: 'p50' | 'p99', limitMs: number): void => {
    if (m?.stats === undefined) return;
    const value = m.stats[stat];
    const met = value <= limitMs;
    checks.push({
      target,
      goal,
      measured: `${formatMs(value)} (${stat} of ${m.stats.n}; ${m.metric})`,
      met,
      gap: met ? undefined : `${(value / limitMs).toFixed(1)}× the target`,
    });
  };
  const py = 'container:python';
  check(
    py,
    'pause ≤ 1 s with numpy/pandas/matplotlib and a 100 MB DataFrame (p50)',
    latency(measurements, py, 'pause (100'),
    'p50',
    1000,
  );
  check(py, 'resume ≤ 500 ms from a Ready container, same session (p50)', latency(measurements, py, 'resume (100'), 'p50', 500);
  const many = latency(measurements, py, 'resume of ');
  const held = measurements.find((m) => m.target === py && m.scenario === 'pause' && m.metric === 'paused sessions held');
  if (held?.value !== undefined) {
    const met = held.value >= 1000;
    checks.push({
      target: py,
      goal: '1,000 paused Python sessions kept on this host',
      measured: `${held.value} paused`,
      met,
      gap: met ? undefined : `${1000 - held.value} short`,
    });
  }
  check(py, 'resume p99 ≤ 1 s with 1,000 paused (from a Ready container)', many, 'p99', 1000);
  check('vm:python', 'vm (TCG): resume ≤ 1 s (p50)', latency(measurements, 'vm:python', 'resume'), 'p50', 1000);
  check('vm:python', 'vm (TCG): fork ≤ 1 s (p50)', latency(measurements, 'vm:python', 'fork'), 'p50', 1000);
  return checks;
}
