/**
 * `npm run bench [-- options]`: allocation-latency benchmarks of every backend available on this
 * host, side by side with their baselines. Progress goes to stderr, the tables to stdout.
 *
 *   --backend NAME    quickjs, isolated-vm, container, container:python, container:javascript, vm,
 *                     vm:python, fake (repeatable or comma-separated; default: all but fake)
 *   --filter NAME     warm-acquire, warm-exec, warm-floor, warm-env, execute, cold-miss, burst, refill,
 *                     steady-churn, memory, density, backend-direct, pause, cluster, baseline (repeatable
 *                     or comma-separated; default: all)
 *   --quick           short run (fewer iterations and sessions)
 *   --json FILE       write the report as JSON (compare later runs against it)
 *   --compare FILE    print the deltas against an earlier --json file
 *   --profile         CPU-profile each target's warm-exec scenario, print the hot functions
 *   --budget-mib N    memory budget for the in-process density figures (default 1024)
 *   --out DIR         where the SVG chart, Markdown tables and profiles go (default bench/results)
 */

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { runBench } from './bench.js';
import { loadReport, renderComparison } from './report/compare.js';
import { renderSvg } from './report/svg.js';
import { renderMarkdown, renderText } from './report/table.js';

const HELP = (await import('node:fs'))
  .readFileSync(new URL(import.meta.url), 'utf8')
  .split('*/')[0]!
  .replace(/^\/\*\*?\n?/, '')
  .replace(/^ \* ?/gm, '');

function list(values: readonly string[] | undefined): string[] {
  return (values ?? [])
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      backend: { type: 'string', multiple: true },
      filter: { type: 'string', multiple: true },
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
      compare: { type: 'string' },
      profile: { type: 'boolean', default: false },
      'budget-mib': { type: 'string', default: '1024' },
      out: { type: 'string', default: path.join(import.meta.dirname, 'results') },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const budgetMib = Number(values['budget-mib']);
  if (!Number.isFinite(budgetMib) || budgetMib <= 0) throw new Error('--budget-mib must be a positive number');
  if (globalThis.gc === undefined)
    process.stderr.write('warning: run with --expose-gc (npm run bench does) for memory figures\n');
  // Load the old report first: a typo in --compare should fail before minutes of benchmarking.
  const old = values.compare === undefined ? undefined : await loadReport(values.compare);
  const outDir = values.out;
  await mkdir(outDir, { recursive: true });

  const { report, profiles } = await runBench({
    backends: list(values.backend),
    filters: list(values.filter),
    quick: values.quick,
    budgetBytes: budgetMib * 2 ** 20,
    profile: values.profile,
    outDir,
  });

  process.stdout.write(`${renderText(report, profiles)}\n`);
  const json = `${JSON.stringify(report, null, 2)}\n`;
  await writeFile(path.join(outDir, 'last-run.json'), json);
  await writeFile(path.join(outDir, 'latest.md'), renderMarkdown(report));
  await writeFile(path.join(outDir, 'latency.svg'), renderSvg(report));
  if (values.json !== undefined) await writeFile(values.json, json);
  if (old !== undefined) process.stdout.write(`\n${renderComparison(old, report)}\n`);
  process.stderr.write(
    `wrote ${path.relative(process.cwd(), outDir)}/{last-run.json,latest.md,latency.svg}${values.json === undefined ? '' : ` and ${values.json}`}\n`,
  );
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
