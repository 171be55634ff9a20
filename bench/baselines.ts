/**
 * Baselines, measured in the same run: what a caller would pay without a pool, creating the
 * sandbox on the spot. Each is the honest "before" of a sandpool figure (see report/ratios.ts).
 */

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

import { NetworkPolicySchema, SessionLimitsSchema } from '../src/options.js';
import { collectGarbage } from './pool-helpers.js';
import { summarize } from './stats.js';
import { construct, type BenchTarget } from './targets.js';
import type { Measurement, Skipped } from './types.js';

export interface BaselineOptions {
  readonly quick: boolean;
  readonly log: (message: string) => void;
}

interface Baseline {
  readonly name: string;
  readonly metric: string;
  /** Runs when one of these targets is selected. */
  readonly forTargets: readonly string[];
  readonly iterations: { readonly full: number; readonly quick: number };
  readonly warmup: number;
  /** Returns the per-iteration step; throws (with a reason) when the baseline cannot run here. */
  setup(): Promise<{ step: () => Promise<number>; teardown?: () => Promise<void> }>;
}

/** Wall time of one child process run to completion; rejects on a non-zero exit. */
function timeProcess(command: string, args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 2000) stderr += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const elapsed = performance.now() - t0;
      if (code === 0) resolve(elapsed);
      else reject(new Error(`${command} ${args.join(' ')} exited with ${code}: ${stderr.trim().slice(0, 300)}`));
    });
  });
}

const CONTAINER_IMAGE = 'localhost/sandpool/code-interpreter:latest';

/** Debian's python3, the same interpreter the images carry; a pyenv shim would add its own start-up. */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

const BASELINES: readonly Baseline[] = [
  {
    name: 'bare-quickjs',
    metric: 'runtime+context+eval',
    forTargets: ['quickjs'],
    iterations: { full: 1000, quick: 200 },
    warmup: 50,
    async setup() {
      const { newQuickJSWASMModule, RELEASE_SYNC } = await import('quickjs-emscripten');
      // The same build the backend uses, loaded once: the bare cost is one runtime, not the module.
      const module = await newQuickJSWASMModule(RELEASE_SYNC);
      return {
        async step() {
          const t0 = performance.now();
          const runtime = module.newRuntime();
          const context = runtime.newContext();
          const handle = context.unwrapResult(context.evalCode('1+1'));
          const value: unknown = context.dump(handle);
          const elapsed = performance.now() - t0;
          handle.dispose();
          context.dispose();
          runtime.dispose();
          if (value !== 2) throw new Error(`bare QuickJS evaluated 1+1 to ${String(value)}`);
          return elapsed;
        },
      };
    },
  },
  {
    name: 'bare-isolated-vm',
    metric: 'isolate+context+eval',
    forTargets: ['isolated-vm'],
    iterations: { full: 300, quick: 60 },
    warmup: 10,
    async setup() {
      // isolated-vm is an optional native dependency: require it so a missing build is a skip.
      const ivm = createRequire(import.meta.url)('isolated-vm') as typeof import('isolated-vm');
      return {
        async step() {
          const t0 = performance.now();
          const isolate = new ivm.Isolate({ memoryLimit: 128 });
          const context = isolate.createContextSync();
          const value: unknown = context.evalSync('1+1');
          const elapsed = performance.now() - t0;
          context.release();
          isolate.dispose();
          if (value !== 2) throw new Error(`bare isolated-vm evaluated 1+1 to ${String(value)}`);
          return elapsed;
        },
      };
    },
  },
  {
    name: 'podman-run',
    metric: 'podman run --rm IMAGE true',
    forTargets: ['container:python', 'container:javascript'],
    iterations: { full: 8, quick: 3 },
    warmup: 1,
    async setup() {
      await timeProcess('podman', ['image', 'exists', CONTAINER_IMAGE]).catch(() => {
        throw new Error(`podman or the image ${CONTAINER_IMAGE} is not available (npm run setup builds it)`);
      });
      // The flags this host needs (runc, explicit ulimits) and the backend uses; no network.
      const args = [
        'run',
        '--rm',
        '--runtime',
        'runc',
        '--ulimit',
        'nofile=4096:4096',
        '--ulimit',
        'nproc=4096:4096',
        '--network',
        'none',
        '--entrypoint',
        '/bin/true',
        CONTAINER_IMAGE,
      ];
      return { step: () => timeProcess('podman', args) };
    },
  },
  {
    // The vm backend normally restores a warm snapshot; with snapshots off it boots, which is the
    // cost a pool hides. Under TCG that is about a minute, so very few iterations.
    name: 'qemu-boot',
    metric: 'QEMU boot to agent ready (VMBackend, snapshots off)',
    forTargets: ['vm:python'],
    iterations: { full: 2, quick: 1 },
    warmup: 0,
    async setup() {
      const backend = await construct('../backends/vm/index.ts', 'VMBackend', { snapshots: false });
      const prepare = {
        poolName: 'bench-boot',
        ownerId: `${process.pid}-bench-boot`,
        containerType: 'PythonLTS' as const,
        limits: SessionLimitsSchema.parse({}),
        network: NetworkPolicySchema.parse({}),
      };
      await backend.prepare?.(prepare);
      let n = 0;
      return {
        async step() {
          n += 1;
          const t0 = performance.now();
          const session = await backend.create({ ...prepare, sessionId: `bench-boot-${process.pid}-${n}` }, { onExit: () => {} });
          const elapsed = performance.now() - t0;
          await backend.destroy(session, { reason: 'stopped' });
          return elapsed;
        },
        teardown: () => backend.close(),
      };
    },
  },
  {
    name: 'python3',
    metric: 'python3 -c pass',
    forTargets: ['container:python', 'vm:python'],
    iterations: { full: 30, quick: 8 },
    warmup: 2,
    async setup() {
      return { step: () => timeProcess(PYTHON, ['-c', 'pass']) };
    },
  },
  {
    name: 'node',
    metric: 'node -e 0',
    forTargets: ['container:javascript'],
    iterations: { full: 20, quick: 5 },
    warmup: 2,
    async setup() {
      return { step: () => timeProcess(process.execPath, ['-e', '0']) };
    },
  },
];

/**
 * What a bare QuickJS runtime+context holds while idle, against which the backend's per-session
 * memory (prelude, limits, handles) is judged. Measured on a module of its own: growth of its
 * WebAssembly memory and of RSS, per runtime, over `count` runtimes.
 */
async function bareQuickJSMemory(count: number): Promise<Measurement[]> {
  const { newQuickJSWASMModule, RELEASE_SYNC } = await import('quickjs-emscripten');
  const module = await newQuickJSWASMModule(RELEASE_SYNC);
  const held: { dispose(): void }[] = [];
  try {
    const hold = () => {
      const runtime = module.newRuntime();
      held.push(runtime.newContext(), runtime);
    };
    hold(); // the module's own start-up is not a per-runtime cost
    collectGarbage();
    const wasm0 = module.getWasmMemory().buffer.byteLength;
    const rss0 = process.memoryUsage().rss;
    for (let i = 0; i < count; i += 1) hold();
    collectGarbage();
    const detail = { runtimes: count };
    return [
      {
        target: 'baseline',
        scenario: 'bare-quickjs',
        metric: 'WebAssembly memory per idle runtime+context',
        unit: 'bytes',
        value: (module.getWasmMemory().buffer.byteLength - wasm0) / count,
        detail,
      },
      {
        target: 'baseline',
        scenario: 'bare-quickjs',
        metric: 'RSS per idle runtime+context',
        unit: 'bytes',
        value: (process.memoryUsage().rss - rss0) / count,
        detail,
      },
    ];
  } finally {
    for (const h of held) h.dispose();
  }
}

/** Run the baselines the selected targets compare against. */
export async function runBaselines(
  targets: readonly BenchTarget[],
  options: BaselineOptions,
): Promise<{ measurements: Measurement[]; skipped: Skipped[] }> {
  const names = new Set(targets.map((t) => t.name));
  const measurements: Measurement[] = [];
  const skipped: Skipped[] = [];
  for (const baseline of BASELINES) {
    if (!baseline.forTargets.some((t) => names.has(t))) continue;
    options.log(`baseline ${baseline.name}: ${baseline.metric}`);
    try {
      const { step, teardown } = await baseline.setup();
      try {
        for (let i = 0; i < baseline.warmup; i += 1) await step();
        collectGarbage();
        const samples: number[] = [];
        const n = options.quick ? baseline.iterations.quick : baseline.iterations.full;
        for (let i = 0; i < n; i += 1) samples.push(await step());
        measurements.push({
          target: 'baseline',
          scenario: baseline.name,
          metric: baseline.metric,
          unit: 'ms',
          stats: summarize(samples),
        });
        if (baseline.name === 'bare-quickjs') measurements.push(...(await bareQuickJSMemory(options.quick ? 500 : 2000)));
      } finally {
        await teardown?.();
      }
    } catch (error) {
      const reason = (error as Error).message;
      options.log(`  skipped: ${reason}`);
      skipped.push({ target: 'baseline', scenario: baseline.name, reason });
    }
  }
  return { measurements, skipped };
}
