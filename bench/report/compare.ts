/** `--compare OLD.json`: the deltas between an earlier run and this one, figure by figure. */

import { readFile } from 'node:fs/promises';

import { formatMs, formatValue } from '../stats.js';
import type { BenchReport, Measurement } from '../types.js';
import { machineLine } from './table.js';

export async function loadReport(file: string): Promise<BenchReport> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new Error(`cannot read ${file}: ${(error as Error).message}`);
  }
  const report = parsed as Partial<BenchReport>;
  if (report.schema !== 'sandpool-bench/1' || !Array.isArray(report.measurements)) {
    throw new Error(`${file} is not a sandpool bench JSON file (schema sandpool-bench/1)`);
  }
  return report as BenchReport;
}

const key = (m: Measurement) => `${m.target}\u0000${m.scenario}\u0000${m.metric}`;

/** Lower is better for time and memory; higher for rates, counts and success. */
const lowerIsBetter = (m: Measurement) => m.unit === 'ms' || m.unit === 'bytes';

function delta(before: number, after: number): string {
  if (!Number.isFinite(before) || !Number.isFinite(after) || before === 0) return '–';
  const pct = ((after - before) / before) * 100;
  return `${pct >= 0 ? '+' : ''}${pct.toFixed(1)}%`;
}

/** Changes within ±`noise` percent are reported as unchanged: timing jitter, not a regression. */
export function renderComparison(old: BenchReport, current: BenchReport, noise = 10): string {
  const previous = new Map(old.measurements.map((m) => [key(m), m]));
  const lines = [`comparing with a run of ${old.machine.date} (${machineLine(old)})`];
  if (old.machine.cpuModel !== current.machine.cpuModel || old.machine.cores !== current.machine.cores) {
    lines.push('warning: different machine — deltas mix hardware with code changes');
  }
  const rows: string[][] = [];
  for (const m of current.measurements) {
    const o = previous.get(key(m));
    if (o === undefined) continue;
    const a = m.stats?.p50 ?? m.value ?? Number.NaN;
    const b = o.stats?.p50 ?? o.value ?? Number.NaN;
    const fmt = (v: number) => (m.unit === 'ms' ? formatMs(v) : formatValue(v, m.unit));
    const change = Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? ((a - b) / b) * 100 : 0;
    const better = lowerIsBetter(m) ? change < -noise : change > noise;
    const worse = lowerIsBetter(m) ? change > noise : change < -noise;
    const p99 =
      m.stats !== undefined && o.stats !== undefined
        ? `p99 ${formatMs(o.stats.p99)} → ${formatMs(m.stats.p99)} (${delta(o.stats.p99, m.stats.p99)})`
        : '';
    rows.push([
      `${m.target} ${m.scenario} ${m.metric}`,
      `${m.stats === undefined ? '' : 'p50 '}${fmt(b)} → ${fmt(a)}`,
      delta(b, a),
      better ? 'better' : worse ? 'WORSE' : '',
      p99,
    ]);
  }
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i]!.length), 0));
  for (const r of rows)
    lines.push(
      r
        .map((c, i) => (i < 4 ? c.padEnd(widths[i]!) : c))
        .join('  ')
        .trimEnd(),
    );
  const gone = old.measurements.filter((m) => !current.measurements.some((c) => key(c) === key(m)));
  if (gone.length > 0) lines.push(`${gone.length} figure(s) of the old run were not measured this time`);
  return lines.join('\n');
}
