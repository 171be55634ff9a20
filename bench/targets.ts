/**
 * What the bench can measure: one target per (backend, language). Backends are imported lazily so
 * a host without Podman or QEMU, or a checkout where a backend has not landed yet, still benches
 * the others; an unavailable target is skipped with the reason printed.
 */

import type { Backend, Language } from '../src/backend.js';
import type { ExecutionResult } from '../src/session-types.js';
import type { ContainerType } from '../src/types.js';

/** How many of everything a target's scenarios use. Out-of-process backends get far fewer. */
export interface Sizes {
  /** (a)/(b): sessions acquired per round from a pool holding exactly that many Ready, and rounds. */
  readonly warm: { readonly batch: number; readonly rounds: number; readonly warmupRounds: number };
  /** (c): executions on one allocated session. */
  readonly execute: { readonly iterations: number; readonly warmup: number };
  /** (d): acquires against a pool with no Ready session. */
  readonly cold: { readonly iterations: number; readonly warmup: number };
  /** (e): concurrent new identifiers against `ready` Ready sessions, repeated `rounds` times. */
  readonly burst: { readonly size: number; readonly ready: number; readonly rounds: number };
  /** (f): sessions created from empty, once per refill concurrency. */
  readonly refill: { readonly count: number; readonly concurrency: readonly number[] };
  /** (g): idle Ready sessions held while memory is measured. */
  readonly memory: { readonly sessions: number };
  /** (h): idle sessions actually held (in-process only); 0 = only estimate from (g). */
  readonly hold: { readonly sessions: number; readonly timeLimitMs: number };
  /**
   * (h) out of process: grow until `max` idle sessions (0 = skip), the host's memory floor, a
   * failure, `stallMs` without progress or `timeLimitMs`; measure after `settleMs`.
   */
  readonly density: { readonly max: number; readonly timeLimitMs: number; readonly settleMs: number; readonly stallMs: number };
  /**
   * Steady churn: steps of `durationMs` at λ from `startLambda` doubling to `maxLambda`, then
   * `bisections` steps between the last pass and the first failure; a ready set covering
   * `coverSeconds` of arrivals; sessions reaped `cooldownSeconds` after their third execution.
   */
  readonly churn: {
    readonly startLambda: number;
    readonly maxLambda: number;
    readonly bisections: number;
    readonly durationMs: number;
    readonly coverSeconds: number;
    readonly cooldownSeconds: number;
  };
  /**
   * Pause (issue 17), on backends that can: `rounds` pause/resume cycles of a session holding a
   * DataFrame of `dataFrameMb` (0: a small variable); `many` sessions paused at once, of which
   * `sample` are resumed, each from a Ready session; `forks` forks. 0 skips a part.
   */
  readonly pause: {
    readonly rounds: number;
    readonly dataFrameMb: number;
    readonly many: number;
    readonly sample: number;
    readonly forks: number;
  };
  /** Upper bound on any one latency loop; it stops early and records fewer samples past it. */
  readonly loopTimeLimitMs: number;
}

export interface BenchTarget {
  /** `quickjs`, `isolated-vm`, `container:python`, `container:javascript`, `vm:python`, `fake`. */
  readonly name: string;
  readonly backendName: string;
  readonly containerType: ContainerType;
  readonly language: Language;
  /** The first-execute probe: `1+1`, or `print(1)` for Python. */
  readonly code: string;
  /** The probe ran correctly (a bench that times failures proves nothing). */
  readonly check: (result: ExecutionResult) => boolean;
  readonly inProcess: boolean;
  /** Only run when selected by name (the fake backend is for the smoke test). */
  readonly explicitOnly: boolean;
  readonly sizes: { readonly full: Sizes; readonly quick: Sizes };
  /** A fresh backend instance; throws with a readable reason when unavailable on this host. */
  load(): Promise<Backend>;
}

const IN_PROCESS_FULL: Sizes = {
  warm: { batch: 50, rounds: 20, warmupRounds: 2 },
  execute: { iterations: 2000, warmup: 200 },
  cold: { iterations: 200, warmup: 20 },
  burst: { size: 100, ready: 10, rounds: 5 },
  refill: { count: 500, concurrency: [1, 4] },
  memory: { sessions: 200 },
  hold: { sessions: 0, timeLimitMs: 0 },
  density: { max: 0, timeLimitMs: 0, settleMs: 0, stallMs: 0 },
  churn: { startLambda: 100, maxLambda: 6400, bisections: 2, durationMs: 5_000, coverSeconds: 0.2, cooldownSeconds: 1 },
  pause: { rounds: 0, dataFrameMb: 0, many: 0, sample: 0, forks: 0 },
  loopTimeLimitMs: 20_000,
};

const IN_PROCESS_QUICK: Sizes = {
  warm: { batch: 20, rounds: 4, warmupRounds: 1 },
  execute: { iterations: 300, warmup: 30 },
  cold: { iterations: 40, warmup: 5 },
  burst: { size: 100, ready: 10, rounds: 1 },
  refill: { count: 100, concurrency: [4] },
  memory: { sessions: 50 },
  hold: { sessions: 0, timeLimitMs: 0 },
  density: { max: 0, timeLimitMs: 0, settleMs: 0, stallMs: 0 },
  churn: { startLambda: 200, maxLambda: 1600, bisections: 0, durationMs: 2_000, coverSeconds: 0.2, cooldownSeconds: 1 },
  pause: { rounds: 0, dataFrameMb: 0, many: 0, sample: 0, forks: 0 },
  loopTimeLimitMs: 5_000,
};

const CONTAINER_FULL: Sizes = {
  warm: { batch: 5, rounds: 4, warmupRounds: 0 },
  execute: { iterations: 100, warmup: 5 },
  cold: { iterations: 8, warmup: 1 },
  burst: { size: 100, ready: 10, rounds: 1 },
  refill: { count: 16, concurrency: [1, 4, 8] },
  memory: { sessions: 8 },
  hold: { sessions: 0, timeLimitMs: 0 },
  density: { max: 600, timeLimitMs: 300_000, settleMs: 20_000, stallMs: 60_000 },
  churn: { startLambda: 1, maxLambda: 32, bisections: 2, durationMs: 20_000, coverSeconds: 3, cooldownSeconds: 2 },
  pause: { rounds: 5, dataFrameMb: 100, many: 1000, sample: 100, forks: 3 },
  loopTimeLimitMs: 60_000,
};

const CONTAINER_QUICK: Sizes = {
  warm: { batch: 3, rounds: 2, warmupRounds: 0 },
  execute: { iterations: 20, warmup: 2 },
  cold: { iterations: 3, warmup: 0 },
  burst: { size: 20, ready: 5, rounds: 1 },
  refill: { count: 8, concurrency: [4] },
  memory: { sessions: 4 },
  hold: { sessions: 0, timeLimitMs: 0 },
  density: { max: 30, timeLimitMs: 120_000, settleMs: 5_000, stallMs: 30_000 },
  churn: { startLambda: 1, maxLambda: 8, bisections: 0, durationMs: 8_000, coverSeconds: 3, cooldownSeconds: 2 },
  pause: { rounds: 2, dataFrameMb: 100, many: 20, sample: 10, forks: 2 },
  loopTimeLimitMs: 30_000,
};

// container:javascript shares the create path with container:python (same image, same agent):
// it gets the scenarios' shape at smaller counts, enough to show what differs (the JS kernel).
const CONTAINER_JS_FULL: Sizes = {
  ...CONTAINER_FULL,
  warm: { batch: 3, rounds: 2, warmupRounds: 0 },
  cold: { iterations: 3, warmup: 0 },
  burst: { size: 30, ready: 10, rounds: 1 },
  refill: { count: 8, concurrency: [4] },
  memory: { sessions: 4 },
  // Density and churn are the Python target's: the JavaScript session differs only in its kernel.
  density: { max: 0, timeLimitMs: 0, settleMs: 0, stallMs: 0 },
  churn: { ...CONTAINER_FULL.churn, maxLambda: 8, bisections: 0 },
  // Pause is measured on the Python target (the figures are Python's).
  pause: { rounds: 0, dataFrameMb: 0, many: 0, sample: 0, forks: 0 },
};

// QEMU under TCG: sessions are restored from a warm snapshot (~0.4 s) but every idle guest still
// holds ~300 MiB and burns CPU on two cores, so a burst of 100 is out of reach: 20 against 5 Ready.
const VM_FULL: Sizes = {
  warm: { batch: 4, rounds: 3, warmupRounds: 0 },
  execute: { iterations: 100, warmup: 5 },
  cold: { iterations: 6, warmup: 0 },
  burst: { size: 20, ready: 5, rounds: 1 },
  refill: { count: 8, concurrency: [1, 2, 4] },
  memory: { sessions: 4 },
  hold: { sessions: 0, timeLimitMs: 0 },
  density: { max: 200, timeLimitMs: 300_000, settleMs: 20_000, stallMs: 60_000 },
  churn: { startLambda: 0.5, maxLambda: 16, bisections: 2, durationMs: 20_000, coverSeconds: 3, cooldownSeconds: 2 },
  pause: { rounds: 3, dataFrameMb: 0, many: 0, sample: 0, forks: 3 },
  loopTimeLimitMs: 180_000,
};

const VM_QUICK: Sizes = {
  warm: { batch: 2, rounds: 1, warmupRounds: 0 },
  execute: { iterations: 20, warmup: 2 },
  cold: { iterations: 2, warmup: 0 },
  burst: { size: 6, ready: 2, rounds: 1 },
  refill: { count: 4, concurrency: [2] },
  memory: { sessions: 2 },
  hold: { sessions: 0, timeLimitMs: 0 },
  density: { max: 10, timeLimitMs: 120_000, settleMs: 5_000, stallMs: 30_000 },
  churn: { startLambda: 0.5, maxLambda: 2, bisections: 0, durationMs: 8_000, coverSeconds: 3, cooldownSeconds: 2 },
  pause: { rounds: 1, dataFrameMb: 0, many: 0, sample: 0, forks: 1 },
  loopTimeLimitMs: 120_000,
};

const jsCheck = (r: ExecutionResult): boolean => r.status === 'Succeeded' && r.result === 2;
const pythonCheck = (r: ExecutionResult): boolean => r.status === 'Succeeded' && r.stdout.trim() === '1';

/**
 * Import `modulePath` (relative to this file) and construct its `exportName` class. The path is a
 * variable on purpose: a backend that has not landed yet must not break type-checking of the bench.
 */
export async function construct(modulePath: string, exportName: string, ...args: unknown[]): Promise<Backend> {
  let module: Record<string, unknown>;
  try {
    module = (await import(new URL(modulePath, import.meta.url).href)) as Record<string, unknown>;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND') throw new Error(`${modulePath} is not in this checkout`);
    throw new Error(`${modulePath} failed to load: ${(error as Error).message}`);
  }
  const ctor = module[exportName];
  if (typeof ctor !== 'function') throw new Error(`${modulePath} does not export ${exportName}`);
  return new (ctor as new (...a: unknown[]) => Backend)(...args);
}

const inProcess = { full: IN_PROCESS_FULL, quick: IN_PROCESS_QUICK };

export const TARGETS: readonly BenchTarget[] = [
  {
    name: 'quickjs',
    backendName: 'quickjs',
    containerType: 'NodeLTS',
    language: 'javascript',
    code: '1+1',
    check: jsCheck,
    inProcess: true,
    explicitOnly: false,
    // (h) for real: issue 6 asks for ≥ 10,000 idle QuickJS sessions in 1 GiB of heap.
    sizes: {
      full: { ...IN_PROCESS_FULL, hold: { sessions: 10_000, timeLimitMs: 120_000 } },
      quick: { ...IN_PROCESS_QUICK, hold: { sessions: 2_000, timeLimitMs: 30_000 } },
    },
    load: () => construct('../backends/quickjs/index.ts', 'QuickJSBackend'),
  },
  {
    name: 'isolated-vm',
    backendName: 'isolated-vm',
    containerType: 'NodeLTS',
    language: 'javascript',
    code: '1+1',
    check: jsCheck,
    inProcess: true,
    explicitOnly: false,
    sizes: inProcess,
    load: () => construct('../backends/isolated-vm/index.ts', 'IsolatedVMBackend'),
  },
  {
    name: 'container:python',
    backendName: 'container',
    containerType: 'PythonLTS',
    language: 'python',
    code: 'print(1)',
    check: pythonCheck,
    inProcess: false,
    explicitOnly: false,
    sizes: { full: CONTAINER_FULL, quick: CONTAINER_QUICK },
    load: () => construct('../backends/container/index.ts', 'ContainerBackend'),
  },
  {
    name: 'container:javascript',
    backendName: 'container',
    containerType: 'NodeLTS',
    language: 'javascript',
    code: '1+1',
    check: jsCheck,
    inProcess: false,
    explicitOnly: false,
    sizes: { full: CONTAINER_JS_FULL, quick: CONTAINER_QUICK },
    load: () => construct('../backends/container/index.ts', 'ContainerBackend'),
  },
  {
    name: 'vm:python',
    backendName: 'vm',
    containerType: 'PythonLTS',
    language: 'python',
    code: 'print(1)',
    check: pythonCheck,
    inProcess: false,
    explicitOnly: false,
    sizes: { full: VM_FULL, quick: VM_QUICK },
    load: () => construct('../backends/vm/index.ts', 'VMBackend'),
  },
  {
    name: 'fake',
    backendName: 'fake',
    containerType: 'NodeLTS',
    language: 'javascript',
    code: '1+1',
    // The fake backend echoes the code: proves the pool path, not an engine.
    check: (r) => r.status === 'Succeeded' && r.result === '1+1',
    inProcess: true,
    explicitOnly: true,
    sizes: inProcess,
    load: () => construct('../test/helpers/fake-backend.ts', 'FakeBackend'),
  },
];

/**
 * Targets named by `--backend` (comma-separated; `container` selects every container target),
 * or every non-explicit target when none is given.
 */
export function selectTargets(names: readonly string[]): BenchTarget[] {
  if (names.length === 0) return TARGETS.filter((t) => !t.explicitOnly);
  const unknown = names.filter((n) => !TARGETS.some((t) => t.name === n || t.backendName === n));
  if (unknown.length > 0) {
    const known = [...new Set(TARGETS.flatMap((t) => [t.backendName, t.name]))].join(', ');
    throw new Error(`unknown backend ${unknown.join(', ')} (known: ${known})`);
  }
  return TARGETS.filter((t) => names.includes(t.name) || names.includes(t.backendName));
}
