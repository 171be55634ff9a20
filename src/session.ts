import type { Duplex } from 'node:stream';

import type { BackendFiles, BackendSession, FileInfo } from './backend.js';
import { InvalidRequestError, SessionBusyError, SessionNotFoundError, UnsupportedError } from './errors.js';
import { toByteChunks, type ByteSource } from './pool/byte-source.js';
import { runExecution } from './pool/run-execution.js';
import { normaliseDataPath } from './pool/file-paths.js';
import { applyBinding, type SessionBinding } from './pool/session-binding.js';
import { slotInfo, type Slot } from './pool/slot.js';
import { streamExecution } from './pool/execution-stream.js';
import type {
  AcquireOptions,
  ExecuteOptions,
  ExecuteStreamOptions,
  ExecutionEvent,
  ExecutionResult,
  PauseResult,
  ResumeResult,
  SessionInfo,
  SessionState,
} from './session-types.js';

import type { SessionApi, SessionOwner } from './session-api.js';

export type { SessionApi };

const NOT_PAUSED: ResumeResult = { resumed: false, durationMs: 0, bytes: 0, lost: [] };

let executionCounter = 0;

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
  /** The slot the session lives in; another one after a resume (a new backend session). */
  #slot: Slot;
  /** The resume in progress, which executions and file operations wait for. */
  #resuming: Promise<ResumeResult> | undefined;
  /** Environment variables bound at acquire: bound again to the new sandbox after a resume. */
  #env: SessionBinding['env'];
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
      this.#live();
      if (binding.env !== undefined) this.#env = binding.env;
      await applyBinding(this.#owner, binding, () => {
        const handle = this.#live();
        this.#touch();
        return handle;
      });
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
    if (this.#slot.state !== 'Paused') {
      try {
        this.#live();
      } catch (error) {
        return Promise.reject(error);
      }
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
    return this.exclusive(async () => {
      await this.#ensureResumed();
      return await this.#run(options, id, queuedAt);
    });
  }

  /**
   * @internal Run `work` in this session's order: after everything queued before it, before
   * anything queued later (executions, pauses, snapshots). It counts as in flight meanwhile.
   */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    this.#inFlight += 1;
    this.#owner.executionBegan(this.#slot);
    const settled = this.#tail.then(work).finally(() => {
      this.#inFlight -= 1;
      this.#owner.idle(this.#slot);
    });
    this.#tail = settled.catch(() => undefined);
    return settled;
  }

  /** @internal The slot the session lives in now. */
  get slot(): Slot {
    return this.#slot;
  }

  /**
   * Write the session's state to disk under the pool's data directory and free its memory: the
   * interpreters' state and files (`interpreter` backends, what cannot be kept is in `lost`) or the
   * whole machine (`machine` backends). Waits for running executions first. Any later use, or
   * `pool.acquire(identifier)`, resumes it. Resolves at once if it is already paused.
   * @throws {UnsupportedError} the backend cannot pause (isolates) or the session is a custom container
   * @throws {SessionNotFoundError} the session was destroyed
   * @example
   * const { bytes, lost } = await session.pause(); // lost: [{ name: 'sock', type: 'socket', … }]
   */
  pause(): Promise<PauseResult> {
    return this.exclusive(async () => {
      await this.#resuming?.catch(() => undefined);
      const slot = this.#slot;
      if (slot.state === 'Paused') {
        const { manifest } = slot.paused!;
        return { bytes: manifest.bytes, durationMs: 0, lost: manifest.checkpoint.lost };
      }
      this.#live();
      return await this.#owner.pause(slot, 'requested');
    });
  }

  /** @internal The cooldown passed under `idleAction: 'pause'`. */
  pauseWhenIdle(): Promise<PauseResult> {
    return this.exclusive(async () => await this.#owner.pause(this.#slot, 'idle'));
  }

  /**
   * Bring a paused session back now (any use does it too). Resolves with what came back and what
   * could not (`lost`), or `{ resumed: false }` when the session was not paused.
   * @throws {BackendError} the checkpoint could not be restored: the session is gone
   */
  resume(): Promise<ResumeResult> {
    return this.#ensureResumed();
  }

  /** @internal Resume if paused; `acquire` says how to wait for a Ready session. */
  resumeFor(acquire: AcquireOptions): Promise<ResumeResult> {
    return this.#ensureResumed(acquire);
  }

  #ensureResumed(acquire: AcquireOptions = {}): Promise<ResumeResult> {
    if (this.#resuming !== undefined) return this.#resuming;
    if (this.#slot.state !== 'Paused') return Promise.resolve(NOT_PAUSED);
    const resuming = this.#owner.resume(this.#slot, this, acquire).then(async ({ slot, result }) => {
      this.#slot = slot;
      // The bound environment lived in the old sandbox's agent: bind it to the new one.
      const { backend } = this.#owner;
      if (this.#env !== undefined && backend.setEnvironment !== undefined) await backend.setEnvironment(slot.handle!, this.#env);
      return result;
    });
    this.#resuming = resuming;
    const settled = (): void => {
      this.#resuming = undefined;
    };
    void resuming.then(settled, settled);
    return resuming;
  }

  /**
   * A copy of this session under `identifier`: variables and files as they are now (the whole
   * machine on `machine` backends). Nothing writable is shared, and random generators are reseeded
   * in the copy. This session keeps running (briefly held still while its state is copied).
   * @throws {UnsupportedError} the backend cannot fork
   * @throws {InvalidRequestError} `identifier` already has a session
   */
  fork(identifier: string): Promise<Session> {
    return this.#owner.fork(this, identifier);
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
    return this.#onFiles((handle, files) =>
      files.upload(handle, target, toByteChunks(data), { maxBytes: this.#owner.options().limits.maxFileSizeBytes }),
    );
  }

  /** List `/mnt/data` (or a sub-directory), optionally recursively. */
  async listFiles(options: { path?: string | undefined; recursive?: boolean | undefined } = {}): Promise<FileInfo[]> {
    const dir = normaliseDataPath(options.path ?? '', { allowRoot: true });
    return this.#onFiles((handle, files) => files.list(handle, { path: dir, recursive: options.recursive === true }));
  }

  /** Metadata of one file. */
  async fileInfo(path: string): Promise<FileInfo> {
    const target = normaliseDataPath(path);
    return this.#onFiles((handle, files) => files.stat(handle, target));
  }

  /** Read a file as a stream of chunks. */
  async downloadFile(path: string): Promise<{ info: FileInfo; body: AsyncIterable<Uint8Array> }> {
    const target = normaliseDataPath(path);
    return this.#onFiles((handle, files) => files.download(handle, target, {}));
  }

  async deleteFile(path: string): Promise<void> {
    const target = normaliseDataPath(path);
    await this.#onFiles((handle, files) => files.delete(handle, target));
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

  /** Destroy the session now (reason `stopped`) and wipe its data, paused or not. Idempotent. */
  async stop(): Promise<void> {
    await this.#resuming?.catch(() => undefined);
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
    const slot = this.#slot;
    const until = Date.now() + Math.ceil(seconds * 1000);
    // A paused session stays on disk at least that long; resumed, it keeps the same floor.
    if (slot.state === 'Paused') {
      slot.extendedUntil = Math.max(slot.extendedUntil ?? 0, until);
      return new Date(this.#owner.extendPaused(slot, until));
    }
    this.#live();
    slot.extendedUntil = Math.max(slot.extendedUntil ?? 0, until);
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
    const handle = this.#live();
    this.#touch();
    const result = await runExecution(
      this.#owner,
      this.#slot,
      handle,
      { options, id, queuedAt, identifier: this.identifier },
      () => {
        this.#finished += 1;
        return this.#finished === 1;
      },
    );
    this.#touch();
    return result;
  }

  /** A file operation, once the session is resumed (if it was paused). */
  async #onFiles<T>(operation: (handle: BackendSession, files: BackendFiles) => Promise<T>): Promise<T> {
    await this.#ensureResumed();
    const handle = this.#live();
    const { backend } = this.#owner;
    if (!backend.capabilities.files || backend.files === undefined) {
      throw new UnsupportedError(`backend "${backend.name}" has no file system for sessions`);
    }
    this.#touch();
    return await operation(handle, backend.files);
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
