/** The run as tables: aligned text for stdout, Markdown for bench/RESULTS.md. */

import { formatBytes, formatMs, formatValue } from '../stats.js';
import type { BenchReport, Measurement } from '../types.js';
import type { HotFunction } from '../profile.js';

type Rows = string[][];

const LATENCY_HEADER = ['scenario', 'metric', 'n', 'p50', 'p90', 'p99', 'max', 'mean ± sd'];
const VALUE_HEADER = ['scenario', 'metric', 'value', 'detail'];

function detailText(m: Measurement): string {
  if (m.detail === undefined) return '';
  return Object.entries(m.detail)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
}

function latencyRows(ms: readonly Measurement[]): Rows {
  return ms
    .filter((m) => m.stats !== undefined)
    .map((m) => {
      const s = m.stats!;
      return [
        m.scenario,
        m.metric,
        String(s.n),
        formatMs(s.p50),
        formatMs(s.p90),
        formatMs(s.p99),
        formatMs(s.max),
        `${formatMs(s.mean)} ± ${formatMs(s.stddev)}`,
      ];
    });
}

function valueRows(ms: readonly Measurement[]): Rows {
  return ms.filter((m) => m.value !== undefined).map((m) => [m.scenario, m.metric, formatValue(m.value!, m.unit), detailText(m)]);
}

function alignedText(header: string[], rows: Rows): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function markdown(header: string[], rows: Rows): string {
  const escapeCell = (c: string) => c.replaceAll('|', '\\|');
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i >= 2 ? '---:' : '---')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(escapeCell).join(' | ')} |`),
  ].join('\n');
}

function targetsOf(report: BenchReport): string[] {
  return [...new Set(report.measurements.map((m) => m.target))];
}

export function machineLine(report: BenchReport): string {
  const m = report.machine;
  return (
    `${m.cpuModel}, ${m.cores} cores, ${formatBytes(m.memoryBytes)} RAM, ${m.os}, kernel ${m.kernel}, ` +
    `Node ${m.node} (V8 ${m.v8}), load ${m.loadAverage.join('/')}, ${m.date}`
  );
}

function checkLines(report: BenchReport): string[] {
  return report.checks.map(
    (c) =>
      `${c.met ? 'MET   ' : 'MISSED'} ${c.target}: ${c.goal} — measured ${c.measured}${c.gap === undefined ? '' : `; ${c.gap}`}`,
  );
}

export function renderText(
  report: BenchReport,
  profiles?: ReadonlyMap<string, { hot: readonly HotFunction[]; file: string }>,
): string {
  const out: string[] = [`sandpool bench — ${machineLine(report)}`, `options: ${JSON.stringify(report.options)}`, ''];
  for (const target of targetsOf(report)) {
    const ms = report.measurements.filter((m) => m.target === target);
    out.push(`== ${target} ==`);
    const latency = latencyRows(ms);
    if (latency.length > 0) out.push(alignedText(LATENCY_HEADER, latency));
    const values = valueRows(ms);
    if (values.length > 0) out.push('', alignedText(VALUE_HEADER, values));
    out.push('');
  }
  if (report.ratios.length > 0) out.push('== ratios (p50) ==', ...report.ratios.map((r) => `${r.target}: ${r.text}`), '');
  if (report.checks.length > 0) out.push('== targets (issue 13) ==', ...checkLines(report), '');
  if (report.skipped.length > 0) {
    out.push(
      '== skipped ==',
      ...report.skipped.map((s) => `${s.target}${s.scenario === undefined ? '' : ` ${s.scenario}`}: ${s.reason}`),
      '',
    );
  }
  for (const [target, profile] of profiles ?? []) {
    out.push(`== CPU profile: ${target} warm-exec (${profile.file}) ==`);
    out.push(
      ...profile.hot.map(
        (h) => `${h.percent.toFixed(1).padStart(5)}%  ${h.selfMs.toFixed(1).padStart(8)} ms  ${h.name}  ${h.location}`,
      ),
      '',
    );
  }
  out.push(`total ${(report.durationMs / 1000).toFixed(1)} s`);
  return out.join('\n');
}

/** The tables for RESULTS.md (the prose around them is written by hand). */
export function renderMarkdown(report: BenchReport): string {
  const out: string[] = [`Machine: ${machineLine(report)}`, ''];
  for (const target of targetsOf(report)) {
    const ms = report.measurements.filter((m) => m.target === target);
    out.push(`### ${target}`, '');
    const latency = latencyRows(ms);
    if (latency.length > 0) out.push(markdown(LATENCY_HEADER, latency), '');
    const values = valueRows(ms);
    if (values.length > 0) out.push(markdown(VALUE_HEADER, values), '');
  }
  if (report.ratios.length > 0) out.push('### Ratios (p50)', '', ...report.ratios.map((r) => `- ${r.target}: ${r.text}`), '');
  if (report.checks.length > 0) out.push('### Targets (issue 13)', '', ...checkLines(report).map((l) => `- ${l}`), '');
  if (report.skipped.length > 0) {
    out.push(
      '### Skipped',
      '',
      ...report.skipped.map((s) => `- ${s.target}${s.scenario === undefined ? '' : ` ${s.scenario}`}: ${s.reason}`),
      '',
    );
  }
  return out.join('\n');
}
