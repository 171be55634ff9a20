import type { Duplex } from 'node:stream';

import type { Backend, BackendFiles, BackendSession, DestroyReason, ExecutionOutcome, FileInfo, OutputChunk } from './backend.js';
import {
  ErrorCode,
  InvalidRequestError,
  SessionBusyError,
  SessionNotFoundError,
  UnsupportedError,
  toSandpoolError,
} from './errors.js';
import type { Environment } from './environment.js';
import type { SessionPoolEvents } from './events.js';
import type { ResolvedPoolOptions } from './options.js';
import { toByteChunks, type ByteSource } from './pool/byte-source.js';
import { lostOutcome, toExecuteRequest, toExecutionResult } from './pool/execution-request.js';
import { normaliseDataPath } from './pool/file-paths.js';
import { slotInfo, type Slot } from './pool/slot.js';
import { streamExecution } from './pool/execution-stream.js';
import type {
  ExecuteOptions,
  ExecuteStreamOptions,
  ExecutionEvent,
  ExecutionResult,
  SessionInfo,
  SessionState,
} from './session-types.js';

/**
 * What a session offers its caller, wherever it runs. `Session` implements it for a session of this
 * process's pool; cluster mode's `RemoteSession` implements it by forwarding every call to the
 * member that owns the session. Code written against `SessionApi` (the server's handlers among it)
 * works with either. (`Session.extend` is not part of it yet: remote handles do not forward it.)
 *
 * Every method touches the session, which restarts its cooldown. Once the session is destroyed
 * every method rejects with `SessionNotFoundError`.
 */
export interface SessionApi {
  /** The caller's identifier. */
  readonly identifier: string;
  /** The pool-assigned session id (unique, not secret). */
  readonly id: string;
  readonly state: SessionState;
  /** Run code; executions on one session run one at a time, in call order. */
  execute(options: ExecuteOptions): Promise<ExecutionResult>;
  /** Run code and yield its output as it happens, then its value and `end` (see ExecutionEvent). */
  executeStream(options: ExecuteOptions, streamOptions?: ExecuteStreamOptions): AsyncIterable<ExecutionEvent>;
  uploadFile(path: string, data: ByteSource): Promise<FileInfo>;
  listFiles(options?: { path?: string | undefined; recursive?: boolean | undefined }): Promise<FileInfo[]>;
  fileInfo(path: string): Promise<FileInfo>;
  downloadFile(path: string): Promise<{ info: FileInfo; body: AsyncIterable<Uint8Array> }>;
  deleteFile(path: string): Promise<void>;
  fetch(request: Request): Promise<Response>;
  connect(): Promise<Duplex>;
  /** Destroy the session now and wipe its data. Idempotent. */
  stop(): Promise<void>;
  info(): SessionInfo;
}

/**
 * @internal What a Session needs from the pool that allocated it: the pool's lifecycle
 * bookkeeping (cooldown, reaping, statistics, events). SessionPool provides it.
 */
export interface SessionOwner {
  readonly backend: Backend;
  /** The pool's options as they are now (`pool.update()` replaces them). */
  options(): ResolvedPoolOptions;
  emit<K extends keyof SessionPoolEvents>(event: K, payload: Parameters<SessionPoolEvents[K]>[0]): void;
  /** Whether anyone listens to `event` (payloads are built only then: the hot path stays lean). */
  listening(event: keyof SessionPoolEvents): boolean;
  destroy(slot: Slot, reason: DestroyReason, message?: string): Promise<void>;
  /** An execution was accepted (it runs now or queues behind the running one). */
  executionBegan(slot: Slot): void;
  /** An execution on the slot settled: the pool may now reap it if it expired meanwhile. */
  idle(slot: Slot): void;
  expiresAt(slot: Slot): number | undefined;
  /** Count a finished execution; the first on a session feeds the first-execution timing. */
  executed(durationMs: number, first: boolean): void;
}

let executionCounter = 0;

/** @internal What `pool.acquire` binds to a session as it is claimed (already validated). */
export interface SessionBinding {
  readonly env?: Environment | undefined;
  /** Normalised paths under /mnt/data and their contents. */
  readonly files?: ReadonlyArray<readonly [string, ByteSource]> | undefined;
}

/** Longest single extension: a year keeps every deadline far inside a timer's and a Date's range. */
export const MAX_EXTEND_SECONDS = 365 * 24 * 3600;

/**
 * A session allocated to an identifier. It owns its executions: they run one at a time, in call
 * order, through one promise chain, with a bounded queue behind the running one (the backend
 * never sees two executions of one session at once). Every method touches the session, which
 * restarts its cooldown. Once the session is destroyed (cooldown, stop, crash, pool close) every
 * method rejects with `SessionNotFoundError`; `pool.acquire(identifier)` then gives a fresh one.
 */
export class Session implements SessionApi {
  readonly #owner: SessionOwner;
  readonly #slot: Slot;
  /** Tail of the execution chain. */
  #tail: Promise<unknown> = Promise.resolve();
  /** Executions started and not yet settled (running + queued). */
  #inFlight = 0;
  /** Executions finished. */
  #finished = 0;
  /** What `acquire` bound to the session (env, files), once applied. */
  #bound: Promise<void> = Promise.resolve();

  /** @internal Created by SessionPool on allocation; do not construct directly. */
  constructor(owner: SessionOwner, slot: Slot) {
    this.#owner = owner;
    this.#slot = slot;
  }

  /** The caller's identifier. */
  get identifier(): string {
    return this.#slot.identifier ?? '';
  }

  /** The pool-assigned session id (unique, not secret). */
  get id(): string {
    return this.#slot.id;
  }

  get state(): SessionState {
    return this.#slot.state;
  }

  /** @internal Executions running or queued on this session. */
  get executionsInFlight(): number {
    return this.#inFlight;
  }

  /** @internal Resolves once every execution started so far has settled; never rejects. */
  whenIdle(): Promise<unknown> {
    return this.#tail;
  }

  /**
   * @internal Bind environment variables and files, as the first link of the execution chain:
   * no execution of this session starts before they are in place. Rejects with the backend's error
   * (which never quotes a value); the pool then destroys the session.
   */
  bind(binding: SessionBinding): Promise<void> {
    const work = this.#tail.then(async () => {
      const handle = this.#live();
      const { backend } = this.#owner;
      if (binding.env !== undefined) {
        if (backend.setEnvironment === undefined) {
          throw new UnsupportedError(`backend "${backend.name}" cannot bind environment variables to its sessions`);
        }
        await backend.setEnvironment(handle, binding.env);
      }
      for (const [path, data] of binding.files ?? []) {
        const { files } = this.#files();
        await files.upload(handle, path, toByteChunks(data), { maxBytes: this.#owner.options().limits.maxFileSizeBytes });
      }
    });
    this.#tail = work.catch(() => undefined);
    this.#bound = work;
    return work;
  }

  /** @internal The binding of `bind`, or nothing to wait for. */
  bound(): Promise<void> {
    return this.#bound;
  }

  /**
   * Run code in the session. Executions on one session run one at a time, in call order.
   * Resolves with `status: 'Failed'` for errors in the code, timeouts and crashes (Azure semantics).
   * @throws {SessionNotFoundError} the session was destroyed
   * @throws {SessionBusyError} too many executions are queued on this session
   * @throws {InvalidRequestError} the code is missing or the language does not fit the pool
   * @example
   * const r = await session.execute({ code: 'var x = 41' });
   * (await session.execute({ code: 'x + 1' })).result; // 42
   */
  execute(options: ExecuteOptions): Promise<ExecutionResult> {
    try {
      this.#live();
    } catch (error) {
      return Promise.reject(error);
    }
    const limit = this.#owner.options().limits.maxQueuedExecutions;
    // `#inFlight` counts the running one too: the queue is what waits behind it.
    if (this.#inFlight > limit) {
      return Promise.reject(
        new SessionBusyError(`session has ${this.#inFlight - 1} executions queued (limit ${limit}); retry later`),
      );
    }
    executionCounter += 1;
    const id = `exec-${this.#slot.id}-${executionCounter.toString(36)}`;
    const queuedAt = Date.now();
    this.#inFlight += 1;
    this.#owner.executionBegan(this.#slot);
    const settled = this.#tail
      .then(() => this.#run(options, id, queuedAt))
      .finally(() => {
        this.#inFlight -= 1;
        this.#owner.idle(this.#slot);
      });
    this.#tail = settled.catch(() => undefined);
    return settled;
  }

  /**
   * Run code and stream what it does: `stdout`/`stderr` text and `display` images as they happen,
   * then `result` (the value, when there is one) and `end` with the fields `execute` resolves
   * with. The execution is queued when the iteration starts. Aborting `signal` or leaving the loop
   * early interrupts the code like a timeout (the iteration then throws AbortedError).
   * @example
   * for await (const event of session.executeStream({ code: 'for i in range(3): print(i)' })) {
   *   if (event.type === 'stdout') process.stdout.write(event.text);
   *   if (event.type === 'end') console.log(event.status);
   * }
   */
  executeStream(options: ExecuteOptions, streamOptions: ExecuteStreamOptions = {}): AsyncIterable<ExecutionEvent> {
    return streamExecution((o) => this.execute(o), options, streamOptions);
  }

  /** Write a file under `/mnt/data`, streamed; rejects with FILE_TOO_LARGE past the pool's cap. */
  async uploadFile(path: string, data: ByteSource): Promise<FileInfo> {
    const target = normaliseDataPath(path);
    const { handle, files } = this.#files();
    return files.upload(handle, target, toByteChunks(data), { maxBytes: this.#owner.options().limits.maxFileSizeBytes });
  }

  /** List `/mnt/data` (or a sub-directory), optionally recursively. */
  async listFiles(options: { path?: string | undefined; recursive?: boolean | undefined } = {}): Promise<FileInfo[]> {
    const dir = normaliseDataPath(options.path ?? '', { allowRoot: true });
    const { handle, files } = this.#files();
    return files.list(handle, { path: dir, recursive: options.recursive === true });
  }

  /** Metadata of one file. */
  async fileInfo(path: string): Promise<FileInfo> {
    const target = normaliseDataPath(path);
    const { handle, files } = this.#files();
    return files.stat(handle, target);
  }

  /** Read a file as a stream of chunks. */
  async downloadFile(path: string): Promise<{ info: FileInfo; body: AsyncIterable<Uint8Array> }> {
    const target = normaliseDataPath(path);
    const { handle, files } = this.#files();
    return files.download(handle, target, {});
  }

  async deleteFile(path: string): Promise<void> {
    const target = normaliseDataPath(path);
    const { handle, files } = this.#files();
    await files.delete(handle, target);
  }

  /** Custom-container sessions: forward an HTTP request to the container's target port. */
  async fetch(request: Request): Promise<Response> {
    const { backend } = this.#owner;
    const handle = this.#forwarding();
    if (backend.fetch === undefined) throw new UnsupportedError(`backend "${backend.name}" has no fetch()`);
    return backend.fetch(handle, request);
  }

  /** Custom-container sessions: a raw byte stream to the target port (WebSocket upgrades). */
  async connect(): Promise<Duplex> {
    const { backend } = this.#owner;
    const handle = this.#forwarding();
    if (backend.connect === undefined) throw new UnsupportedError(`backend "${backend.name}" has no connect()`);
    return backend.connect(handle);
  }

  /** Destroy the session now (reason `stopped`) and wipe its data. Idempotent. */
  async stop(): Promise<void> {
    await this.#owner.destroy(this.#slot, 'stopped');
  }

  /**
   * Keep the session alive for at least `seconds` more: its cooldown and maxAlive deadlines move to
   * no earlier than now + `seconds` (never brought forward; later activity still restarts the
   * cooldown). Resolves with the new `expiresAt`.
   * @throws {InvalidRequestError} `seconds` is not a positive number of at most one year
   * @throws {SessionNotFoundError} the session was destroyed
   * @example
   * await session.extend(3600); // not reaped within the next hour, even at maxAlive
   */
  async extend(seconds: number): Promise<Date | undefined> {
    if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_EXTEND_SECONDS) {
      throw new InvalidRequestError(`extend() takes a number of seconds in (0, ${MAX_EXTEND_SECONDS}]`);
    }
    this.#live();
    const slot = this.#slot;
    slot.extendedUntil = Math.max(slot.extendedUntil ?? 0, Date.now() + Math.ceil(seconds * 1000));
    // The armed timer fires no later than the old deadline and re-arms itself lazily, so the
    // extension needs no timer churn here.
    const at = this.#owner.expiresAt(slot);
    return at === undefined ? undefined : new Date(at);
  }

  info(): SessionInfo {
    return slotInfo(this.#slot, this.#owner.expiresAt(this.#slot));
  }

  // ---- internals -------------------------------------------------------------------------------

  /** The backend's handle while the session is allocated; SessionNotFoundError after. */
  #live(): BackendSession {
    const slot = this.#slot;
    if (slot.state !== 'Allocated' || slot.handle === undefined) {
      throw new SessionNotFoundError(`session ${slot.id} no longer exists (it was destroyed); acquire the identifier again`);
    }
    return slot.handle;
  }

  #touch(): void {
    this.#slot.lastAccessedAt = Date.now();
  }

  /** One execution, when its turn has come. */
  async #run(options: ExecuteOptions, id: string, queuedAt: number): Promise<ExecutionResult> {
    const owner = this.#owner;
    const { backend } = owner;
    const request = toExecuteRequest(options, backend, owner.options());
    const handle = this.#live();
    const slot = this.#slot;
    const started = Date.now();
    const base = {
      pool: owner.options().name,
      backend: backend.name,
      sessionId: slot.id,
      identifier: this.identifier,
      executionId: id,
    };
    if (owner.listening('executionStarted')) {
      owner.emit('executionStarted', { ...base, at: started, language: request.language, queueMs: started - queuedAt });
    }
    this.#touch();
    let outcome: ExecutionOutcome;
    let replaced = false;
    // The caller's callback gets output only while this execution runs, and cannot break it.
    const caller = options.onOutput;
    let streaming = caller !== undefined;
    const onOutput =
      caller === undefined
        ? undefined
        : (chunk: OutputChunk): void => {
            if (!streaming) return;
            try {
              caller(chunk);
            } catch {
              // The execution goes on; the caller's own failure is theirs to see.
            }
          };
    try {
      outcome = await backend.execute(handle, request, { signal: options.signal, onOutput });
    } catch (error) {
      streaming = false;
      const failure = toSandpoolError(error, 'execution failed');
      // Refused, or interrupted because the caller aborted: the session itself is fine.
      if (
        failure.code === ErrorCode.INVALID_REQUEST ||
        failure.code === ErrorCode.UNSUPPORTED ||
        (failure.code === ErrorCode.ABORTED && options.signal?.aborted === true)
      ) {
        throw failure;
      }
      // The session died under the code (process, container or VM gone): fail this execution at
      // once with Azure's semantics and replace the session.
      replaced = true;
      outcome = lostOutcome(failure.message, started);
      void owner.destroy(slot, 'failed', failure.message);
    }
    streaming = false;
    if (!replaced && outcome.sessionState === 'lost') {
      replaced = true;
      void owner.destroy(slot, 'failed', 'the backend reported the session lost after an execution');
    }
    this.#touch();
    this.#finished += 1;
    owner.executed(Date.now() - started, this.#finished === 1);
    const result = toExecutionResult(id, outcome, replaced, request.timeoutMs);
    if (owner.listening('executionFinished')) {
      const timedOut = outcome.timedOut === true;
      owner.emit('executionFinished', {
        ...base,
        at: Date.now(),
        status: result.status,
        durationMs: Date.now() - started,
        timedOut,
      });
    }
    return result;
  }

  #files(): { handle: BackendSession; files: BackendFiles } {
    const handle = this.#live();
    const { backend } = this.#owner;
    if (!backend.capabilities.files || backend.files === undefined) {
      throw new UnsupportedError(`backend "${backend.name}" has no file system for sessions`);
    }
    this.#touch();
    return { handle, files: backend.files };
  }

  #forwarding(): BackendSession {
    const handle = this.#live();
    const { backend } = this.#owner;
    if (!backend.capabilities.httpForwarding) {
      throw new UnsupportedError(`backend "${backend.name}" does not forward HTTP (custom-container sessions only)`);
    }
    this.#touch();
    return handle;
  }
}
