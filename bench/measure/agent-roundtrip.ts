/**
 * Measures client → agent → kernel → client round trips on this host (not a test: speed targets
 * live in benchmarks). Run: `npx tsx bench/measure/agent-roundtrip.ts [iterations]`.
 */

import { run, startAgent } from '../../test/agent/agent-harness.js';

function stats(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return `p50 ${at(0.5).toFixed(2)} ms, p90 ${at(0.9).toFixed(2)} ms, p99 ${at(0.99).toFixed(2)} ms, min ${at(0).toFixed(2)} ms`;
}

async function main(): Promise<void> {
  const iterations = Number(process.argv[2] ?? 500);
  for (const transport of ['unix', 'stdio'] as const) {
    const started = performance.now();
    const agent = await startAgent({ transport });
    const startup = performance.now() - started;
    try {
      for (let i = 0; i < 20; i++) await agent.client.execute(run('print(1)')); // warm-up
      const cases: Array<[string, () => Promise<unknown>]> = [
        ['ping', () => agent.client.ping()],
        ['python print(1)', () => agent.client.execute(run('print(1)'))],
        ['javascript console.log(1)', () => agent.client.execute(run('console.log(1)', { language: 'javascript' }))],
        ['shell echo 1', () => agent.client.execute(run('echo 1', { language: 'shell' }))],
      ];
      console.log(`${transport}: agent ready in ${startup.toFixed(0)} ms (no preload)`);
      for (const [name, fn] of cases) {
        await fn();
        const samples: number[] = [];
        for (let i = 0; i < iterations; i++) {
          const t = performance.now();
          await fn();
          samples.push(performance.now() - t);
        }
        console.log(`  ${name.padEnd(28)} ${stats(samples)}`);
      }
    } finally {
      await agent.close();
    }
  }
}

await main();
