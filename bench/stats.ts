/** Descriptive statistics of sample sets, and the number formatting every report shares. */

import type { SampleStats, Unit } from './types.js';

/** Value at quantile `q` (0..1) of an ascending array, linearly interpolated between ranks. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  const a = sorted[lower]!;
  const b = sorted[upper]!;
  return a + (b - a) * (position - lower);
}

export function summarize(samples: readonly number[]): SampleStats {
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return { n: 0, min: NaN, max: NaN, mean: NaN, stddev: NaN, p50: NaN, p90: NaN, p99: NaN };
  const mean = sorted.reduce((sum, x) => sum + x, 0) / n;
  // Sample standard deviation (n - 1): these are samples of a distribution, not the population.
  const variance = n > 1 ? sorted.reduce((sum, x) => sum + (x - mean) ** 2, 0) / (n - 1) : 0;
  return {
    n,
    min: sorted[0]!,
    max: sorted[n - 1]!,
    mean,
    stddev: Math.sqrt(variance),
    p50: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
    p99: quantile(sorted, 0.99),
  };
}

/** Milliseconds with three significant digits, switching to µs below 0.1 ms and s from 1 s. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  const sign = ms < 0 ? '-' : '';
  const abs = Math.abs(ms);
  if (abs < 0.1) return `${sign}${(abs * 1000).toPrecision(3)} µs`;
  if (abs >= 1000) return `${sign}${significant(abs / 1000)} s`;
  return `${sign}${abs.toPrecision(3)} ms`;
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '–';
  const sign = bytes < 0 ? '-' : '';
  let value = Math.abs(bytes);
  for (const unit of ['B', 'KiB', 'MiB', 'GiB']) {
    if (value < 1024 || unit === 'GiB') return `${sign}${unit === 'B' ? value.toFixed(0) : value.toPrecision(3)} ${unit}`;
    value /= 1024;
  }
  return `${bytes} B`;
}

export function formatValue(value: number, unit: Unit): string {
  switch (unit) {
    case 'ms':
      return formatMs(value);
    case 'bytes':
      return formatBytes(value);
    case 'sessions/s':
      return `${significant(value)} sessions/s`;
    case 'sessions':
      return `${Math.round(value).toLocaleString('en-US')} sessions`;
    case 'percent':
      return `${value.toFixed(1)} %`;
    case 'count':
      return significant(value);
  }
}

/** "1/40" for ratios below one, "3.2×" above: how a sandpool figure compares with its baseline. */
export function formatRatio(ratio: number): string {
  if (!Number.isFinite(ratio) || ratio <= 0) return '–';
  if (ratio < 1) return `1/${significant(1 / ratio, 2)}`;
  return `${significant(ratio, 2)}×`;
}

/** `digits` significant digits without exponent notation: 1950 → "1,950", 0.0123 → "0.012". */
function significant(value: number, digits = 3): string {
  if (Math.abs(value) >= 10 ** digits) return Math.round(value).toLocaleString('en-US');
  return Number(value.toPrecision(digits)).toString();
}
