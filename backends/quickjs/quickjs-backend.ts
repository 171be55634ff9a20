/**
 * The QuickJS backend: JavaScript sessions inside the QuickJS engine compiled to WebAssembly
 * (quickjs-emscripten), in the embedding process. Each session is its own QuickJS runtime with a
 * memory limit, a stack limit and an interrupt handler enforcing the execution deadline. All
 * sessions share ONE WebAssembly module, loaded lazily and reused: that keeps an idle session at
 * tens of kilobytes, at the price of one shared linear memory (see docs in README/SECURITY).
 *
 * Executions run synchronously on the calling thread: a long cell blocks the Node event loop
 * until it ends or its deadline interrupts it. Sandbox timers are the exception; the host sleeps
 * between them asynchronously.
 */

import { newQuickJSWASMModule, RELEASE_SYNC } from 'quickjs-emscripten';
import { z } from 'zod';

import type {
  BackendExecuteOptions,
  Backend,
  BackendCapabilities,
  BackendSession,
  CreateOptions,
  DestroyReason,
  ExecuteRequest,
  ExecutionOutcome,
  SessionSpec,
} from '../../src/backend.js';
import { AbortedError, BackendError, ErrorCode, SessionNotFoundError, toSandpoolError } from '../../src/errors.js';
import { parseOrThrow } from '../../src/options.js';
import {
  JS_ISOLATE_CAPABILITIES,
  MiB,
  bindJsEnvironment,
  newJsSessionRecord,
  runJsSessionExecution,
  stopJsSession,
  type JsSessionRecord,
} from '../support/js-isolate/js-backend-support.js';
import { loadAcorn } from '../support/js-isolate/syntax-depth.js';
import { QuickJSSandbox, shareModule, type SharedModule } from './quickjs-sandbox.js';

export const QuickJSBackendOptionsSchema = z
  .object({
    /**
     * Most stack a session's JavaScript may use, in bytes (QuickJS's own accounting). Deep
     * recursion past it is an `InternalError: stack overflow` in the session. QuickJS's C frames
     * run on the host thread's stack inside WebAssembly at roughly 3 host bytes per QuickJS byte,
     * so large values let session code overflow the HOST stack (Node's default is ~1 MiB), which
     * loses every session of the backend. @default 128 KiB (about 700 nested JS calls)
     */
    maxStackSizeBytes: z
      .number()
      .int()
      .min(32 * 1024)
      .max(1024 * 1024)
      .default(128 * 1024),
    /**
     * Deepest syntax nesting accepted in a cell (brackets, nested functions, unary chains),
     * checked before QuickJS parses it, for the same host-stack reason. @default 200
     */
    maxSyntaxDepth: z.number().int().min(16).max(2000).default(200),
    /**
     * New sessions move to a fresh WebAssembly module once the current one's linear memory has
     * grown past this many MiB. WebAssembly memory never shrinks, so after a memory bomb the old
     * module's high-water mark is only given back when its last session ends and it is collected.
     * @default 512
     */
    recycleModuleAboveMb: z.number().int().min(32).max(2048).default(512),
    /**
     * Hard cap on one WebAssembly module's linear memory (all its sessions together); growth past
     * it fails the allocating session with out-of-memory. The module's own maximum is 2 GiB.
     * @default 1536
     */
    maxModuleMemoryMb: z.number().int().min(64).max(2048).default(1536),
  })
  .strict();

export type QuickJSBackendOptions = z.input<typeof QuickJSBackendOptionsSchema>;

type QuickJSSessionRecord = JsSessionRecord<QuickJSSandbox>;

/** Runs each session in its own QuickJS runtime (WebAssembly), in this process. */
export class QuickJSBackend implements Backend {
  readonly name = 'quickjs';
  readonly capabilities: BackendCapabilities = JS_ISOLATE_CAPABILITIES;
  readonly #options: z.output<typeof QuickJSBackendOptionsSchema>;
  readonly #sessions = new Map<string, QuickJSSessionRecord>();
  #module: Promise<SharedModule> | undefined;
  #closed = false;

  /** @throws InvalidOptionsError when an option is invalid (every problem is named). */
  constructor(options?: QuickJSBackendOptions) {
    this.#options = parseOrThrow(QuickJSBackendOptionsSchema, options ?? {}, 'QuickJSBackend options');
  }

  /** Number of live sessions. */
  get size(): number {
    return this.#sessions.size;
  }

  async #loadModule(): Promise<SharedModule> {
    const current = this.#module === undefined ? undefined : await this.#module.catch(() => undefined);
    // A poisoned module keeps serving nothing: its sessions report 'lost', new ones get a fresh
    // module. A bloated one keeps its sessions but takes no new ones (see recycleModuleAboveMb).
    const bytes = current?.module.getWasmMemory().buffer.byteLength ?? 0;
    // Near its cap (within 10%), a module can refuse the growth a new runtime needs at a point
    // where QuickJS does not check for it (a trap, not an out-of-memory error): start new sessions
    // on a fresh module before that, as for a bloated one.
    const bloated =
      current !== undefined &&
      (bytes > this.#options.recycleModuleAboveMb * MiB || bytes > 0.9 * this.#options.maxModuleMemoryMb * MiB);
    if (current?.poisoned || bloated) this.#module = undefined;
    if (this.#module === undefined) {
      const maxBytes = this.#options.maxModuleMemoryMb * MiB;
      const loading = newQuickJSWASMModule(RELEASE_SYNC).then((module) => shareModule(module, maxBytes));
      this.#module = loading;
      // A failed load must not be cached: the next create retries.
      loading.catch(() => {
        if (this.#module === loading) this.#module = undefined;
      });
    }
    return this.#module;
  }

  /** Loads the WebAssembly module once, so the first `create` does not pay for it. */
  async prepare(): Promise<void> {
    this.#assertOpen();
    try {
      await this.#loadModule();
    } catch (error) {
      throw new BackendError(`could not load the QuickJS WebAssembly module: ${String(error)}`, {
        code: ErrorCode.BACKEND_UNAVAILABLE,
        cause: error,
      });
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new BackendError('the quickjs backend is closed');
  }

  async create(spec: SessionSpec, options: CreateOptions): Promise<BackendSession> {
    this.#assertOpen();
    if (options.signal?.aborted) throw new AbortedError('session creation was aborted');
    if (this.#sessions.has(spec.sessionId)) throw new BackendError(`session ${spec.sessionId} already exists`);
    await this.prepare();
    const acorn = await loadAcorn();
    let sandbox: QuickJSSandbox | undefined;
    // Two attempts: a full module is retired by the first, and the second runs on a fresh one.
    for (let attempt = 1; sandbox === undefined; attempt++) {
      const shared = await this.#loadModule();
      if (options.signal?.aborted) throw new AbortedError('session creation was aborted');
      this.#assertOpen();
      try {
        sandbox = new QuickJSSandbox(shared, {
          memoryLimitMb: spec.limits.memoryMb,
          maxStackSizeBytes: this.#options.maxStackSizeBytes,
          maxSyntaxDepth: this.#options.maxSyntaxDepth,
          acorn,
        });
      } catch (error) {
        const name = error instanceof Error ? error.name : '';
        if (name === 'RuntimeError' || name === 'RangeError') {
          // The engine itself failed (WebAssembly abort, host stack): every session on it is in doubt.
          shared.poisoned = true;
          shared.poisonReason = error instanceof Error ? error.message : String(error);
        } else if (this.#module !== undefined && (await this.#module.catch(() => undefined)) === shared) {
          // Most likely the module is full: its sessions carry on, new ones get a fresh module.
          this.#module = undefined;
        }
        if (attempt >= 2) throw toSandpoolError(error, 'could not create a QuickJS session');
      }
    }
    if (this.#sessions.has(spec.sessionId) || this.#closed) {
      sandbox.dispose();
      throw new BackendError(this.#closed ? 'the quickjs backend is closed' : `session ${spec.sessionId} already exists`);
    }
    this.#sessions.set(spec.sessionId, newJsSessionRecord(sandbox, spec.limits.memoryMb));
    return { id: spec.sessionId };
  }

  #get(session: BackendSession): QuickJSSessionRecord {
    const record = this.#sessions.get(session.id);
    if (record === undefined) throw new SessionNotFoundError(`quickjs session ${session.id} does not exist (destroyed?)`);
    return record;
  }

  async execute(session: BackendSession, request: ExecuteRequest, options?: BackendExecuteOptions): Promise<ExecutionOutcome> {
    return runJsSessionExecution(this.name, this.#sessions, session.id, request, options, (sandbox) =>
      this.#disposeSandbox(sandbox),
    );
  }

  #disposeSandbox(sandbox: QuickJSSandbox): void {
    try {
      sandbox.dispose();
    } catch (error) {
      // A failed free means the shared module is in doubt: stop using it for new sessions.
      this.#module = undefined;
      sandbox.poisonModule(error);
      throw toSandpoolError(error, 'could not free a QuickJS session');
    }
  }

  /** The session's read-only `env` object holds these from now on (names added or replaced). */
  async setEnvironment(session: BackendSession, env: Readonly<Record<string, string>>): Promise<void> {
    await bindJsEnvironment(this.name, this.#sessions, session.id, env);
  }

  async destroy(session: BackendSession, _options: { readonly reason: DestroyReason }): Promise<void> {
    const record = this.#sessions.get(session.id);
    if (record === undefined) return;
    this.#sessions.delete(session.id);
    // A running execution can only be between steps (QuickJS runs synchronously): stop it there,
    // then free the runtime once it has let go.
    await stopJsSession(record);
    this.#disposeSandbox(record.sandbox);
  }

  /** Heap bytes one session's runtime holds (QuickJS accounting); for benchmarks. */
  memoryUsage(session: BackendSession): number {
    return this.#get(session).sandbox.memoryUsageBytes();
  }

  async close(): Promise<void> {
    this.#closed = true;
    const records = [...this.#sessions.values()];
    this.#sessions.clear();
    for (const record of records) {
      await stopJsSession(record);
      this.#disposeSandbox(record.sandbox);
    }
    this.#module = undefined;
  }
}
