/**
 * The isolated-vm backend: each session is its own V8 isolate (isolated-vm 5.x) with a memory
 * limit, in this process, running on isolated-vm's threads. The native addon is loaded on first
 * use, so importing this module costs nothing and a missing build is a clear BACKEND_UNAVAILABLE
 * error rather than an import crash.
 */

import { createRequire } from 'node:module';

import type IvmModule from 'isolated-vm';
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
  bindJsEnvironment,
  newJsSessionRecord,
  runJsSessionExecution,
  type JsSessionRecord,
} from '../support/js-isolate/js-backend-support.js';
import { IsolatedVMSandbox } from './isolated-vm-sandbox.js';

type Ivm = typeof IvmModule;

export const IsolatedVMBackendOptionsSchema = z
  .object({
    /**
     * Load isolated-vm from here instead of the package's own dependency (a path or package name
     * given to `require`). For embedders that ship their own build.
     */
    modulePath: z.string().min(1).optional(),
  })
  .strict();

export type IsolatedVMBackendOptions = z.input<typeof IsolatedVMBackendOptionsSchema>;

const REBUILD_HINT =
  'isolated-vm is a native addon built at install time. Rebuild it with `npm rebuild isolated-vm` ' +
  '(it needs python3, make and a C++ compiler; npm 11 skips install scripts unless the package is ' +
  'allowed, e.g. `npm install-scripts approve isolated-vm`, or run `npm run setup`). On Node >= 20, ' +
  'if it crashes at start, run node with --no-node-snapshot.';

let shared: Promise<Ivm> | undefined;

/** Load the native addon once per process; a failure is not cached, so a rebuild can be retried. */
function loadIsolatedVM(modulePath: string | undefined): Promise<Ivm> {
  if (modulePath !== undefined) return requireIvm(modulePath);
  shared ??= requireIvm('isolated-vm').catch((error: unknown) => {
    shared = undefined;
    throw error;
  });
  return shared;
}

async function requireIvm(specifier: string): Promise<Ivm> {
  try {
    // createRequire in both builds (tsup shims import.meta.url in CJS); a bare `require` would become
    // the bundler's "dynamic require is not supported" stub in the ESM build.
    const load = createRequire(import.meta.url);
    const loaded = load(specifier) as Ivm | { default: Ivm };
    const ivm = 'Isolate' in loaded ? loaded : loaded.default;
    if (typeof ivm.Isolate !== 'function') throw new Error('the module does not export Isolate');
    return ivm;
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new BackendError(`isolated-vm could not be loaded (${reason}). ${REBUILD_HINT}`, {
      code: ErrorCode.BACKEND_UNAVAILABLE,
      cause: error,
    });
  }
}

type IsolateSessionRecord = JsSessionRecord<IsolatedVMSandbox>;

/** Runs each session in its own V8 isolate (isolated-vm), in this process. */
export class IsolatedVMBackend implements Backend {
  readonly name = 'isolated-vm';
  readonly capabilities: BackendCapabilities = JS_ISOLATE_CAPABILITIES;
  readonly #options: z.output<typeof IsolatedVMBackendOptionsSchema>;
  readonly #sessions = new Map<string, IsolateSessionRecord>();
  #closed = false;

  /** @throws InvalidOptionsError when an option is invalid (every problem is named). */
  constructor(options?: IsolatedVMBackendOptions) {
    this.#options = parseOrThrow(IsolatedVMBackendOptionsSchema, options ?? {}, 'IsolatedVMBackend options');
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** Loads the native addon, so a broken build fails here with a clear error. */
  async prepare(): Promise<void> {
    this.#assertOpen();
    await loadIsolatedVM(this.#options.modulePath);
  }

  #assertOpen(): void {
    if (this.#closed) throw new BackendError('the isolated-vm backend is closed');
  }

  async create(spec: SessionSpec, options: CreateOptions): Promise<BackendSession> {
    this.#assertOpen();
    if (options.signal?.aborted) throw new AbortedError('session creation was aborted');
    if (this.#sessions.has(spec.sessionId)) throw new BackendError(`session ${spec.sessionId} already exists`);
    const ivm = await loadIsolatedVM(this.#options.modulePath);
    let sandbox: IsolatedVMSandbox;
    try {
      sandbox = await IsolatedVMSandbox.create(ivm, spec.limits.memoryMb);
    } catch (error) {
      throw toSandpoolError(error, 'could not create an isolated-vm session');
    }
    if (options.signal?.aborted || this.#closed || this.#sessions.has(spec.sessionId)) {
      sandbox.dispose();
      if (this.#closed) throw new BackendError('the isolated-vm backend is closed');
      if (options.signal?.aborted) throw new AbortedError('session creation was aborted');
      throw new BackendError(`session ${spec.sessionId} already exists`);
    }
    this.#sessions.set(spec.sessionId, newJsSessionRecord(sandbox, spec.limits.memoryMb));
    return { id: spec.sessionId };
  }

  #get(session: BackendSession): IsolateSessionRecord {
    const record = this.#sessions.get(session.id);
    if (record === undefined) throw new SessionNotFoundError(`isolated-vm session ${session.id} does not exist (destroyed?)`);
    return record;
  }

  async execute(session: BackendSession, request: ExecuteRequest, options?: BackendExecuteOptions): Promise<ExecutionOutcome> {
    return runJsSessionExecution(this.name, this.#sessions, session.id, request, options, (sandbox) => sandbox.dispose());
  }

  /** The session's read-only `env` object holds these from now on (names added or replaced). */
  async setEnvironment(session: BackendSession, env: Readonly<Record<string, string>>): Promise<void> {
    await bindJsEnvironment(this.name, this.#sessions, session.id, env);
  }

  async destroy(session: BackendSession, _options: { readonly reason: DestroyReason }): Promise<void> {
    const record = this.#sessions.get(session.id);
    if (record === undefined) return;
    this.#sessions.delete(session.id);
    // Disposing interrupts a running execution at once; its caller gets SessionNotFoundError.
    record.destroyed.abort();
    try {
      record.sandbox.dispose();
    } catch (error) {
      throw toSandpoolError(error, 'could not dispose an isolated-vm session');
    }
  }

  /** Heap bytes one session's isolate holds (V8 statistics); for benchmarks. */
  async memoryUsage(session: BackendSession): Promise<number> {
    return this.#get(session).sandbox.memoryUsageBytes();
  }

  async close(): Promise<void> {
    this.#closed = true;
    const records = [...this.#sessions.values()];
    this.#sessions.clear();
    for (const record of records) {
      record.destroyed.abort();
      record.sandbox.dispose();
    }
  }
}
