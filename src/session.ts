import type { Duplex } from 'node:stream';

import type { FileInfo } from './backend.js';
import type { ByteSource } from './pool/byte-source.js';
import type { Slot } from './pool/slot.js';
import type { ExecuteOptions, ExecutionResult, SessionInfo, SessionState } from './session-types.js';

/** What a Session needs from its pool. Internal: the pool implements it. */
export interface SessionHost {
  execute(slot: Slot, options: ExecuteOptions): Promise<ExecutionResult>;
  uploadFile(slot: Slot, path: string, data: ByteSource): Promise<FileInfo>;
  listFiles(slot: Slot, options: { path?: string | undefined; recursive?: boolean | undefined }): Promise<FileInfo[]>;
  fileInfo(slot: Slot, path: string): Promise<FileInfo>;
  downloadFile(slot: Slot, path: string): Promise<{ info: FileInfo; body: AsyncIterable<Uint8Array> }>;
  deleteFile(slot: Slot, path: string): Promise<void>;
  fetch(slot: Slot, request: Request): Promise<Response>;
  connect(slot: Slot): Promise<Duplex>;
  stop(slot: Slot): Promise<void>;
  extend(slot: Slot, seconds: number): Promise<Date | undefined>;
  info(slot: Slot): SessionInfo;
}

/**
 * A session allocated to an identifier. Every method touches the session, which restarts its
 * cooldown. Once the session is destroyed (cooldown, stop, crash, pool close) every method rejects
 * with `SessionNotFoundError`; `pool.acquire(identifier)` then gives a fresh session.
 */
export class Session {
  readonly #host: SessionHost;
  readonly #slot: Slot;

  /** @internal Created by SessionPool; do not construct directly. */
  constructor(host: SessionHost, slot: Slot) {
    this.#host = host;
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
    return this.#host.execute(this.#slot, options);
  }

  /** Write a file under `/mnt/data`, streamed; rejects with FILE_TOO_LARGE past the pool's cap. */
  uploadFile(path: string, data: ByteSource): Promise<FileInfo> {
    return this.#host.uploadFile(this.#slot, path, data);
  }

  /** List `/mnt/data` (or a sub-directory), optionally recursively. */
  listFiles(options: { path?: string | undefined; recursive?: boolean | undefined } = {}): Promise<FileInfo[]> {
    return this.#host.listFiles(this.#slot, options);
  }

  /** Metadata of one file. */
  fileInfo(path: string): Promise<FileInfo> {
    return this.#host.fileInfo(this.#slot, path);
  }

  /** Read a file as a stream of chunks. */
  downloadFile(path: string): Promise<{ info: FileInfo; body: AsyncIterable<Uint8Array> }> {
    return this.#host.downloadFile(this.#slot, path);
  }

  deleteFile(path: string): Promise<void> {
    return this.#host.deleteFile(this.#slot, path);
  }

  /** Custom-container sessions: forward an HTTP request to the container's target port. */
  fetch(request: Request): Promise<Response> {
    return this.#host.fetch(this.#slot, request);
  }

  /** Custom-container sessions: a raw byte stream to the target port (WebSocket upgrades). */
  connect(): Promise<Duplex> {
    return this.#host.connect(this.#slot);
  }

  /** Destroy the session now (reason `stopped`) and wipe its data. Idempotent. */
  stop(): Promise<void> {
    return this.#host.stop(this.#slot);
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
  extend(seconds: number): Promise<Date | undefined> {
    return this.#host.extend(this.#slot, seconds);
  }

  info(): SessionInfo {
    return this.#host.info(this.#slot);
  }
}
