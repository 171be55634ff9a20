/**
 * One QuickJS session: its own runtime (memory limit, stack limit, interrupt handler) and one
 * context, driven through the shared prelude. Every handle the host creates is disposed before the
 * runtime is freed: a leaked handle makes QuickJS assert at `JS_FreeRuntime`, and an assertion
 * aborts the WebAssembly module that every session of the backend shares.
 */

import type { QuickJSContext, QuickJSHandle, QuickJSRuntime, QuickJSWASMModule } from 'quickjs-emscripten';

import { MiB } from '../support/js-isolate/js-backend-support.js';
import type { Fault, PreludeCall, SandboxDriver, Step } from '../support/js-isolate/run-execution.js';
import { SANDBOX_EXTRAS } from '../support/js-isolate/sandbox-extras.js';
import { SANDBOX_PRELUDE } from '../support/js-isolate/sandbox-prelude.js';
import { checkSyntaxDepth, checkSyntaxDepthWith, type loadAcorn } from '../support/js-isolate/syntax-depth.js';

const NO_HANDLES: readonly QuickJSHandle[] = [];
const NO_JOBS: Step<void> = { ok: true, value: undefined };

/** Largest source `eval`/`Function` may compile inside a QuickJS session (checked on the host). */
const MAX_RUNTIME_SOURCE_CHARS = 4 * 1024 * 1024;

const API_FUNCTIONS = [
  'begin',
  'drain',
  'poll',
  'settle',
  'fail',
  'status',
  'nextTimer',
  'runTimer',
  'clearTimers',
  'render',
  'renderError',
  'bindEnv',
  'beginEnv',
  'endEnv',
] as const;
type ApiFunction = (typeof API_FUNCTIONS)[number];

export interface QuickJSSandboxOptions {
  readonly memoryLimitMb: number;
  readonly maxStackSizeBytes: number;
  /** Deepest syntax nesting a cell may have (see syntax-depth.ts). */
  readonly maxSyntaxDepth: number;
  /** acorn, loaded: `eval` and `Function` inside the sandbox check their source synchronously. */
  readonly acorn: Awaited<ReturnType<typeof loadAcorn>>;
}

/**
 * The WebAssembly module and whether it can still be trusted. When QuickJS throws a HOST exception
 * (the host stack overflowed inside WebAssembly, an engine assertion), the module's memory may be
 * inconsistent: every session on it is lost and the backend loads a fresh module for new ones.
 */
export interface SharedModule {
  readonly module: QuickJSWASMModule;
  poisoned: boolean;
  poisonReason?: string;
  /** The session whose code is running now (QuickJS runs synchronously: at most one). */
  executing: QuickJSSandbox | undefined;
}

/**
 * Wrap a freshly loaded module so that growing its linear memory is charged to the session that is
 * running. QuickJS's own limit counts allocations rather than bytes in this build (a 1 MiB string
 * costs 8 "bytes"), so without this one session could grow the memory every session shares to its
 * 2 GiB maximum. Emscripten grows memory through `wasmMemory.grow()` called from JavaScript; a
 * refused growth makes `malloc` fail, which QuickJS reports as an ordinary out-of-memory error.
 */
export function shareModule(module: QuickJSWASMModule, maxModuleBytes: number): SharedModule {
  const shared: SharedModule = { module, poisoned: false, executing: undefined };
  const memory = module.getWasmMemory();
  const grow = memory.grow.bind(memory);
  Object.defineProperty(memory, 'grow', {
    configurable: true,
    value: (pages: number): number => {
      const delta = pages * 65536;
      if (memory.buffer.byteLength + delta > maxModuleBytes) throw new RangeError('sandpool: QuickJS module memory cap reached');
      const session = shared.executing;
      if (session !== undefined && !session.chargeGrowth(delta)) {
        throw new RangeError('sandpool: QuickJS session memory limit reached');
      }
      return grow(pages);
    },
  });
  return shared;
}

export class QuickJSSandbox implements SandboxDriver {
  readonly #shared: SharedModule;
  readonly #maxSyntaxDepth: number;
  readonly #runtime: QuickJSRuntime;
  readonly #context: QuickJSContext;
  readonly #api = new Map<ApiFunction, QuickJSHandle>();
  /** The interrupt handler stops session code once `performance.now()` passes this. */
  #deadline = Number.POSITIVE_INFINITY;
  #alive = true;
  /** Bytes of shared linear memory this session's code made the module grow by, and its cap. */
  #grownBytes = 0;
  #growthRefused = false;
  readonly #memoryLimitBytes: number;

  constructor(shared: SharedModule, options: QuickJSSandboxOptions) {
    this.#shared = shared;
    this.#maxSyntaxDepth = options.maxSyntaxDepth;
    this.#memoryLimitBytes = options.memoryLimitMb * MiB;
    this.#runtime = shared.module.newRuntime();
    try {
      this.#runtime.setMemoryLimit(options.memoryLimitMb * MiB);
      this.#runtime.setMaxStackSize(options.maxStackSizeBytes);
      this.#runtime.setInterruptHandler(() => performance.now() > this.#deadline);
      this.#context = this.#runtime.newContext();
      this.#installPrelude(options);
    } catch (error) {
      this.dispose();
      throw error;
    }
  }

  /** Record `bytes` of module growth for this session; false when that would pass its limit. */
  chargeGrowth(bytes: number): boolean {
    if (this.#grownBytes + bytes > this.#memoryLimitBytes) {
      this.#growthRefused = true;
      return false;
    }
    this.#grownBytes += bytes;
    return true;
  }

  get alive(): boolean {
    return this.#alive && !this.#shared.poisoned;
  }

  #installPrelude(options: QuickJSSandboxOptions): void {
    const ctx = this.#context;
    // Runtime compiles (eval, Function) are parsed by acorn on the host first; see syntax-depth.ts.
    using checkSource = ctx.newFunction('checkSource', (sourceHandle) => {
      if (ctx.typeof(sourceHandle) !== 'string') return ctx.newString('source must be a string');
      const source = ctx.getString(sourceHandle);
      // The host parse is synchronous and outside the deadline's reach: bound its size.
      if (source.length > MAX_RUNTIME_SOURCE_CHARS) {
        return ctx.newString(`source too large to compile at run time (limit ${MAX_RUNTIME_SOURCE_CHARS} characters)`);
      }
      const check = checkSyntaxDepthWith(options.acorn, source, options.maxSyntaxDepth);
      return ctx.newString(check.ok ? '' : check.message.replace(/^SyntaxError: /, ''));
    });
    using factory = ctx.unwrapResult(ctx.evalCode(SANDBOX_PRELUDE, 'sandpool-prelude.js', { type: 'global' }));
    // `true`: QuickJS needs the JavaScript JSON.stringify (the native one recurses unchecked).
    using loadExtras = ctx.newFunction('loadExtras', () => ctx.newString(SANDBOX_EXTRAS));
    using api = ctx.unwrapResult(ctx.callFunction(factory, ctx.undefined, loadExtras, ctx.true, checkSource));
    for (const name of API_FUNCTIONS) this.#api.set(name, ctx.getProp(api, name));
  }

  /** Turn a QuickJS exception into a fault; `undefined` means "an ordinary error thrown by the code". */
  #classify(error: QuickJSHandle): Fault | undefined {
    const ctx = this.#context;
    let message: string | undefined;
    let unreadable = false;
    if (ctx.typeof(error) === 'object') {
      using m = ctx.getProp(error, 'message');
      // A runtime at its memory limit cannot even read a property: the read itself fails.
      unreadable = ctx.typeof(m) === 'unknown';
      if (ctx.typeof(m) === 'string') message = ctx.getString(m);
    }
    // The interrupt raises an uncatchable InternalError("interrupted"); trust it only past the deadline.
    if (message === 'interrupted' && performance.now() >= this.#deadline) return { kind: 'timeout' };
    if (this.#growthRefused || unreadable || message === 'out of memory' || ctx.typeof(error) === 'null') {
      return { kind: 'memory', text: 'the session ran out of memory' };
    }
    return undefined;
  }

  #withDeadline<T>(timeLeftMs: number, body: () => Step<T>): Step<T> {
    if (this.#shared.poisoned) {
      this.#alive = false;
      const reason = this.#shared.poisonReason ?? 'unknown';
      return { ok: false, fault: { kind: 'crash', text: `the shared QuickJS engine failed (${reason})` } };
    }
    if (!this.#alive) return { ok: false, fault: { kind: 'crash', text: 'the session was disposed' } };
    this.#deadline = performance.now() + timeLeftMs;
    this.#shared.executing = this;
    try {
      return body();
    } catch (error) {
      // A host-side exception from quickjs-emscripten (not from session code) means the engine
      // itself failed; do not trust this runtime again.
      this.#alive = false;
      const text = error instanceof Error ? error.message : String(error);
      this.#shared.poisoned = true;
      this.#shared.poisonReason = text;
      return { ok: false, fault: { kind: 'crash', text: `QuickJS failed: ${text}` } };
    } finally {
      this.#deadline = Number.POSITIVE_INFINITY;
      this.#shared.executing = undefined;
    }
  }

  #callApi(name: ApiFunction, args: readonly QuickJSHandle[]): Step<QuickJSHandle> {
    const fn = this.#api.get(name);
    if (fn === undefined) return { ok: false, fault: { kind: 'crash', text: `prelude function ${name} is missing` } };
    const result = this.#context.callFunction(fn, this.#context.undefined, ...args);
    if ('error' in result && result.error !== undefined) {
      // Explicit dispose rather than `using` here and below: this path runs several times per
      // execution, and the down-levelled `using` helper cost more than the call itself.
      const error = result.error;
      try {
        const fault = this.#classify(error);
        return { ok: false, fault: fault ?? { kind: 'crash', text: `the sandbox prelude failed in ${name}` } };
      } finally {
        error.dispose();
      }
    }
    return { ok: true, value: result.value };
  }

  #readPrimitive(handle: QuickJSHandle): Step<string | number> {
    const ctx = this.#context;
    const type = ctx.typeof(handle);
    if (type === 'string') return { ok: true, value: ctx.getString(handle) };
    if (type === 'number') return { ok: true, value: ctx.getNumber(handle) };
    if (type === 'undefined') return { ok: true, value: '' };
    return { ok: false, fault: { kind: 'crash', text: `the sandbox prelude returned a ${type}` } };
  }

  async runScript(code: string, timeLeftMs: number): Promise<Step<string>> {
    // A cell cannot nest deeper than it is long: short cells need no parse on the host.
    if (code.length > this.#maxSyntaxDepth) {
      const syntax = await checkSyntaxDepth(code, this.#maxSyntaxDepth);
      if (!syntax.ok) return { ok: false, fault: { kind: 'error', text: syntax.message } };
    }
    return this.#withDeadline(timeLeftMs, () => {
      const ctx = this.#context;
      const evaluated = ctx.evalCode(code, 'cell.js', { type: 'global' });
      let outcome: Step<QuickJSHandle>;
      if ('error' in evaluated && evaluated.error !== undefined) {
        const error = evaluated.error;
        try {
          const fault = this.#classify(error);
          outcome = fault !== undefined ? { ok: false, fault } : this.#callApi('fail', [error]);
        } finally {
          error.dispose();
        }
      } else {
        const value = evaluated.value;
        try {
          outcome = this.#callApi('settle', [value]);
        } finally {
          value.dispose();
        }
      }
      if (!outcome.ok) return outcome;
      const status = outcome.value;
      try {
        const read = this.#readPrimitive(status);
        return read.ok ? { ok: true, value: String(read.value) } : read;
      } finally {
        status.dispose();
      }
    });
  }

  call(name: PreludeCall, args: readonly (number | string)[], timeLeftMs: number): Promise<Step<string | number>> {
    return Promise.resolve(
      this.#withDeadline(timeLeftMs, () => {
        const handles =
          args.length === 0
            ? NO_HANDLES
            : args.map((a) => (typeof a === 'string' ? this.#context.newString(a) : this.#context.newNumber(a)));
        try {
          const outcome = this.#callApi(name, handles);
          if (!outcome.ok) return outcome;
          const value = outcome.value;
          try {
            return this.#readPrimitive(value);
          } finally {
            value.dispose();
          }
        } finally {
          for (const h of handles) h.dispose();
        }
      }),
    );
  }

  runJobs(timeLeftMs: number): Promise<Step<void>> {
    if (this.alive && !this.#runtime.hasPendingJob()) return Promise.resolve(NO_JOBS);
    return Promise.resolve(
      this.#withDeadline(timeLeftMs, (): Step<void> => {
        while (this.#runtime.hasPendingJob()) {
          const result = this.#runtime.executePendingJobs(-1);
          if ('error' in result && result.error !== undefined) {
            using error = result.error;
            const fault = this.#classify(error);
            if (fault !== undefined) return { ok: false, fault };
            // Any other job exception was already turned into a rejected promise; keep draining.
          } else {
            result.dispose();
          }
        }
        // The interrupt can end a job without surfacing an error (the job's exception is consumed
        // by its promise); a deadline that passed while draining is a timeout all the same.
        if (performance.now() >= this.#deadline) return { ok: false, fault: { kind: 'timeout' } };
        return { ok: true, value: undefined };
      }),
    );
  }

  hasPendingJobs(): boolean {
    return this.alive && this.#runtime.hasPendingJob();
  }

  /** Bytes the runtime holds (QuickJS's own accounting). */
  memoryUsageBytes(): number {
    if (!this.alive) return 0;
    using usage = this.#runtime.computeMemoryUsage();
    const dumped = this.#context.dump(usage) as { memory_used_size?: number } | undefined;
    return typeof dumped?.memory_used_size === 'number' ? dumped.memory_used_size : 0;
  }

  /** Mark the shared module as untrustworthy (an engine failure seen outside an execution). */
  poisonModule(error: unknown): void {
    this.#shared.poisoned = true;
    this.#shared.poisonReason = error instanceof Error ? error.message : String(error);
  }

  /** Free everything. Idempotent. */
  dispose(): void {
    this.#alive = false;
    // Never call into a poisoned module: freeing could trip an assertion on corrupted memory.
    if (this.#shared.poisoned) return;
    for (const handle of this.#api.values()) if (handle.alive) handle.dispose();
    this.#api.clear();
    // `#context` may be unset when the constructor failed half-way.
    const ctx = this.#context as QuickJSContext | undefined;
    if (ctx?.alive) ctx.dispose();
    if (this.#runtime.alive) this.#runtime.dispose();
  }
}
