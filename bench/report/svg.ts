/**
 * An SVG chart of the latency distributions, one row per (target, scenario, metric), on a log
 * scale so that QuickJS microseconds and QEMU seconds share one axis. Each row: a line from min to
 * max, a box from p50 to p99, a thick mark at p50 and a thin one at p90. No chart dependency.
 */

import { formatMs } from '../stats.js';
import type { BenchReport, Measurement } from '../types.js';
import { machineLine } from './table.js';

const WIDTH = 1100;
const LABEL = 330;
const RIGHT = 190;
const ROW = 20;
const TOP = 60;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];

const escapeXml = (s: string) =>
  s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');

export function renderSvg(report: BenchReport): string {
  const rows = report.measurements.filter(
    (m): m is Measurement & { stats: NonNullable<Measurement['stats']> } =>
      m.stats !== undefined && m.stats.n > 0 && m.stats.min > 0,
  );
  const targets = [...new Set(rows.map((m) => m.target))];
  const lo = Math.min(...rows.map((m) => m.stats.min));
  const hi = Math.max(...rows.map((m) => m.stats.max));
  const minDecade = Math.floor(Math.log10(Number.isFinite(lo) ? lo : 0.001));
  const maxDecade = Math.max(minDecade + 1, Math.ceil(Math.log10(Number.isFinite(hi) ? hi : 1)));
  const plot = WIDTH - LABEL - RIGHT;
  const x = (ms: number) => LABEL + ((Math.log10(ms) - minDecade) / (maxDecade - minDecade)) * plot;

  const parts: string[] = [];
  let y = TOP;
  targets.forEach((target, ti) => {
    const color = COLORS[ti % COLORS.length]!;
    parts.push(`<text x="8" y="${y + 14}" font-weight="bold" fill="${color}">${escapeXml(target)}</text>`);
    y += ROW;
    for (const m of rows.filter((r) => r.target === target)) {
      const s = m.stats;
      const mid = y + ROW / 2;
      parts.push(
        `<g><title>${escapeXml(`${target} ${m.scenario} ${m.metric}: n=${s.n} min ${formatMs(s.min)} p50 ${formatMs(s.p50)} p90 ${formatMs(s.p90)} p99 ${formatMs(s.p99)} max ${formatMs(s.max)}`)}</title>`,
        `<text x="20" y="${mid + 4}">${escapeXml(`${m.scenario} · ${m.metric}`)}</text>`,
        `<line x1="${x(s.min).toFixed(1)}" x2="${x(s.max).toFixed(1)}" y1="${mid}" y2="${mid}" stroke="${color}" stroke-width="1"/>`,
        `<rect x="${x(s.p50).toFixed(1)}" y="${y + 4}" width="${Math.max(1, x(s.p99) - x(s.p50)).toFixed(1)}" height="${ROW - 8}" fill="${color}" fill-opacity="0.35" stroke="${color}"/>`,
        `<line x1="${x(s.p50).toFixed(1)}" x2="${x(s.p50).toFixed(1)}" y1="${y + 2}" y2="${y + ROW - 2}" stroke="${color}" stroke-width="3"/>`,
        `<line x1="${x(s.p90).toFixed(1)}" x2="${x(s.p90).toFixed(1)}" y1="${y + 4}" y2="${y + ROW - 4}" stroke="${color}" stroke-width="1"/>`,
        `<text x="${WIDTH - RIGHT + 8}" y="${mid + 4}">${escapeXml(`p50 ${formatMs(s.p50)} · p99 ${formatMs(s.p99)}`)}</text>`,
        '</g>',
      );
      y += ROW;
    }
  });
  const bottom = y + 10;
  const axis: string[] = [];
  for (let d = minDecade; d <= maxDecade; d += 1) {
    const ms = 10 ** d;
    const gx = x(ms).toFixed(1);
    axis.push(
      `<line x1="${gx}" x2="${gx}" y1="${TOP - 6}" y2="${bottom}" stroke="#ccc"/>`,
      `<text x="${gx}" y="${TOP - 10}" text-anchor="middle" fill="#555">${escapeXml(formatMs(ms))}</text>`,
    );
  }
  const height = bottom + 40;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="8" y="18" font-size="14" font-weight="bold">sandpool allocation latency (log scale): line min–max, box p50–p99, thick mark p50, thin mark p90</text>`,
    `<text x="8" y="34" fill="#555">${escapeXml(machineLine(report))}</text>`,
    ...axis,
    ...parts,
    `<text x="8" y="${height - 12}" fill="#555">bench/run.ts · ${escapeXml(report.machine.date)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
