/**
 * One isolated-vm session: a V8 isolate with a memory limit and one context, driven through the
 * shared prelude. Code runs on isolated-vm's own threads (the async API), so a long cell never
 * blocks the Node event loop. Only strings and numbers cross back to the host; console output is
 * buffered in the isolate and drained as one string per step.
 */

import type IvmModule from 'isolated-vm';

import type { Fault, PreludeCall, SandboxDriver, Step } from '../support/js-isolate/run-execution.js';
import { SANDBOX_EXTRAS } from '../support/js-isolate/sandbox-extras.js';
import { SANDBOX_PRELUDE } from '../support/js-isolate/sandbox-prelude.js';

type Ivm = typeof IvmModule;
type Isolate = IvmModule.Isolate;
type Context = IvmModule.Context;
type Reference = IvmModule.Reference;

const API_FUNCTIONS = [
  'begin',
  'drain',
  'poll',
  'settle',
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

const TIMED_OUT = 'Script execution timed out.';
const BOUNDARY = '<isolated-vm boundary>';
/** Longest error text taken from an engine error (the rest is cut). */
const MAX_ERROR_CHARS = 64 * 1024;

/** Keep the sandbox's frames of a stack and drop the host's (its paths are none of the caller's business). */
function sandboxStack(stack: string): string {
  const lines = stack.split('\n');
  const cut = lines.findIndex((line) => line.includes(BOUNDARY));
  return (cut < 0 ? lines : lines.slice(0, cut)).join('\n');
}

function errorText(error: unknown): string {
  if (error instanceof Error) {
    const head = error.message === '' ? error.name : `${error.name}: ${error.message}`;
    const stack = typeof error.stack === 'string' ? sandboxStack(error.stack) : head;
    return (stack.startsWith(head) ? stack : `${head}\n${stack}`).slice(0, MAX_ERROR_CHARS);
  }
  return `Uncaught ${String(error)}`.slice(0, MAX_ERROR_CHARS);
}

export class IsolatedVMSandbox implements SandboxDriver {
  readonly #ivm: Ivm;
  readonly #isolate: Isolate;
  #context: Context | undefined;
  readonly #api = new Map<ApiFunction, Reference>();
  #catastrophe: string | undefined;

  private constructor(ivm: Ivm, memoryLimitMb: number) {
    this.#ivm = ivm;
    this.#isolate = new ivm.Isolate({
      memoryLimit: memoryLimitMb,
      // V8 lost control of this isolate: never use it again (without a handler, the process aborts).
      onCatastrophicError: (message) => {
        this.#catastrophe = message;
      },
    });
  }

  static async create(ivm: Ivm, memoryLimitMb: number): Promise<IsolatedVMSandbox> {
    const sandbox = new IsolatedVMSandbox(ivm, memoryLimitMb);
    try {
      await sandbox.#init();
    } catch (error) {
      sandbox.dispose();
      throw error;
    }
    return sandbox;
  }

  async #init(): Promise<void> {
    const context = await this.#isolate.createContext();
    this.#context = context;
    const loadExtras = new this.#ivm.Callback(() => SANDBOX_EXTRAS);
    // `false`: V8's native JSON.stringify checks its stack, so the sandbox keeps it.
    const api = (await context.evalClosure(`return (${SANDBOX_PRELUDE})($0, false);`, [loadExtras], {
      result: { reference: true },
      timeout: 5000,
    })) as Reference;
    try {
      for (const name of API_FUNCTIONS) this.#api.set(name, (await api.get(name, { reference: true })) as Reference);
    } finally {
      api.release();
    }
  }

  get alive(): boolean {
    return !this.#isolate.isDisposed && this.#catastrophe === undefined;
  }

  #classify(error: unknown): Fault {
    if (this.#catastrophe !== undefined) return { kind: 'crash', text: `V8 failed: ${this.#catastrophe}` };
    if (this.#isolate.isDisposed) {
      const message = error instanceof Error ? error.message : String(error);
      if (/memory limit/i.test(message)) return { kind: 'memory', text: 'the session ran out of memory' };
      return { kind: 'crash', text: 'the isolate was disposed' };
    }
    if (error instanceof Error && error.message === TIMED_OUT) return { kind: 'timeout' };
    return { kind: 'error', text: errorText(error) };
  }

  #deadCheck(): Step<never> | undefined {
    if (this.alive) return undefined;
    return { ok: false, fault: this.#classify(new Error('the isolate is gone')) };
  }

  async runScript(code: string, timeLeftMs: number): Promise<Step<string>> {
    const dead = this.#deadCheck();
    if (dead !== undefined) return dead;
    const started = performance.now();
    let script: IvmModule.Script | undefined;
    let value: unknown;
    try {
      script = await this.#isolate.compileScript(code, { filename: 'cell.js' });
      value = await script.run(this.#context!, { timeout: Math.max(1, Math.floor(timeLeftMs)), reference: true });
    } catch (error) {
      return { ok: false, fault: this.#classify(error) };
    } finally {
      script?.release();
    }
    const rest = Math.max(1, Math.floor(timeLeftMs - (performance.now() - started)));
    try {
      // The completion value goes straight back into the isolate (`derefInto`): it never exists on the host.
      const arg = value instanceof this.#ivm.Reference ? value.derefInto() : value;
      const status: unknown = await this.#api.get('settle')!.apply(undefined, [arg], { timeout: rest });
      return typeof status === 'string'
        ? { ok: true, value: status }
        : { ok: false, fault: { kind: 'crash', text: 'bad settle status' } };
    } catch (error) {
      return { ok: false, fault: this.#classify(error) };
    } finally {
      if (value instanceof this.#ivm.Reference) value.release();
    }
  }

  async call(name: PreludeCall, args: readonly (number | string)[], timeLeftMs: number): Promise<Step<string | number>> {
    const dead = this.#deadCheck();
    if (dead !== undefined) return dead;
    try {
      const value: unknown = await this.#api.get(name)!.apply(undefined, [...args], {
        timeout: Math.max(1, Math.floor(timeLeftMs)),
      });
      if (typeof value === 'string' || typeof value === 'number') return { ok: true, value };
      if (value === undefined) return { ok: true, value: '' };
      return { ok: false, fault: { kind: 'crash', text: `the sandbox prelude returned a ${typeof value}` } };
    } catch (error) {
      const fault = this.#classify(error);
      // A prelude call that throws is an engine problem, not the cell's error.
      return { ok: false, fault: fault.kind === 'error' ? { kind: 'crash', text: fault.text } : fault };
    }
  }

  /** V8 runs the microtask queue after every call into the isolate, within that call's timeout. */
  async runJobs(): Promise<Step<void>> {
    return this.#deadCheck() ?? { ok: true, value: undefined };
  }

  /** A terminated isolate drops its microtask queue, so nothing is left over. */
  hasPendingJobs(): boolean {
    return false;
  }

  /** Heap bytes of the isolate (V8 statistics, including external memory). */
  async memoryUsageBytes(): Promise<number> {
    if (!this.alive) return 0;
    const stats = await this.#isolate.getHeapStatistics();
    return stats.used_heap_size + stats.externally_allocated_size;
  }

  /** Free the isolate. Idempotent; interrupts a running execution. */
  dispose(): void {
    for (const ref of this.#api.values()) ref.release();
    this.#api.clear();
    this.#context?.release();
    this.#context = undefined;
    if (!this.#isolate.isDisposed) this.#isolate.dispose();
  }
}
