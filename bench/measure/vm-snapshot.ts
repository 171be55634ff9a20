/**
 * VM figures for docs/VM.md and the benchmark: cold boot vs snapshot restore to agent-ready, the
 * `print(1)` round trip once Ready, and the memory (PSS) of an idle VM. Not a test: run it with
 *   node --import tsx bench/measure/vm-snapshot.ts [--cold]
 * Exported for bench/ as well.
 */
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';

import type { VMBackend } from '../../backends/vm/index.js';
import { makeVmBackend, vmSpec } from '../../test/vm/vm-test-config.js';

export interface VmFigures {
  readonly accelerator: string;
  readonly coldBootMs?: number | undefined;
  readonly restoreMs: number[];
  readonly print1Ms: { readonly median: number; readonly p90: number; readonly min: number };
  readonly idlePssMb: number;
  readonly idleRssMb: number;
}

function pss(pid: number): { pss: number; rss: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name: string): number =>
    Number(/^(\w+):\s+(\d+)/m.exec(text.split('\n').find((l) => l.startsWith(`${name}:`)) ?? '')?.[2] ?? 0);
  return { pss: field('Pss') / 1024, rss: field('Rss') / 1024 };
}

async function print1(backend: VMBackend, session: { id: string }, runs: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const outcome = await backend.execute(session, {
      language: 'python',
      code: 'print(1)',
      timeoutMs: 10_000,
      outputMaxBytes: 1024,
    });
    times.push(performance.now() - started);
    if (outcome.stdout !== '1\n') throw new Error(`unexpected output ${JSON.stringify(outcome.stdout)}`);
  }
  return times.sort((a, b) => a - b);
}

export async function measureVm(options: { cold?: boolean; restores?: number } = {}): Promise<VmFigures> {
  const ownerId = `measure-${randomUUID()}`;
  const backend = makeVmBackend();
  try {
    const { accelerator } = await backend.accelerator();
    let coldBootMs: number | undefined;
    if (options.cold) {
      const cold = makeVmBackend({ snapshots: false });
      const session = await cold.create(vmSpec(ownerId), { onExit: () => undefined });
      coldBootMs = cold.lastStart?.ms;
      await cold.close();
      void session;
    }
    const restoreMs: number[] = [];
    let last: { id: string } | undefined;
    for (let i = 0; i < (options.restores ?? 3); i++) {
      if (last) await backend.destroy(last, { reason: 'stopped' });
      last = await backend.create(vmSpec(ownerId), { onExit: () => undefined });
      if (backend.lastStart?.mode !== 'snapshot') throw new Error(`not restored: ${backend.lastStart?.fallbackReason}`);
      restoreMs.push(backend.lastStart.ms);
    }
    const times = await print1(backend, last!, 60);
    await new Promise((r) => setTimeout(r, 2000));
    const pid = backend.sessionsInfo()[0]?.pid ?? 0;
    const memory = pss(pid);
    return {
      accelerator,
      coldBootMs,
      restoreMs,
      print1Ms: {
        median: times[Math.floor(times.length / 2)] ?? 0,
        p90: times[Math.floor(times.length * 0.9)] ?? 0,
        min: times[0] ?? 0,
      },
      idlePssMb: Math.round(memory.pss),
      idleRssMb: Math.round(memory.rss),
    };
  } finally {
    await backend.close();
  }
}

if (process.argv[1]?.endsWith('vm-snapshot.ts')) {
  const figures = await measureVm({ cold: process.argv.includes('--cold') });
  process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
}
