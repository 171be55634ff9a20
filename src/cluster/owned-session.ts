/**
 * A local session as cluster mode hands it out: the pool's own session, guarded. Before and after
 * every operation the member must still hold the identifier under a lease it can prove is alive;
 * otherwise the call rejects with `ClusterUnavailableError` and an answer computed meanwhile is
 * dropped, so no answer leaves a member after it stopped serving (another member may own the
 * identifier by the time the lease could have expired).
 */

import type { Duplex } from 'node:stream';

import type { FileInfo } from '../backend.js';
import type { ByteSource } from '../pool/byte-source.js';
import { streamExecution } from '../pool/execution-stream.js';
import type {
  ExecuteOptions,
  ExecuteStreamOptions,
  ExecutionEvent,
  ExecutionResult,
  SessionInfo,
  SessionState,
} from '../session-types.js';
import type { SessionApi } from './session-api.js';

export class OwnedSession implements SessionApi {
  readonly #inner: SessionApi;
  readonly #guard: () => void;

  /** `guard` throws when the member may no longer answer for this session. */
  constructor(inner: SessionApi, guard: () => void) {
    this.#inner = inner;
    this.#guard = guard;
  }

  get identifier(): string {
    return this.#inner.identifier;
  }

  get id(): string {
    return this.#inner.id;
  }

  get state(): SessionState {
    return this.#inner.state;
  }

  execute(options: ExecuteOptions): Promise<ExecutionResult> {
    return this.#guarded(() => this.#inner.execute(options));
  }

  /** Guarded like `execute`: checked before the execution starts and before its end is yielded. */
  executeStream(options: ExecuteOptions, streamOptions?: ExecuteStreamOptions): AsyncIterable<ExecutionEvent> {
    return streamExecution((o) => this.execute(o), options, streamOptions);
  }

  uploadFile(path: string, data: ByteSource): Promise<FileInfo> {
    return this.#guarded(() => this.#inner.uploadFile(path, data));
  }

  listFiles(options?: { path?: string | undefined; recursive?: boolean | undefined }): Promise<FileInfo[]> {
    return this.#guarded(() => this.#inner.listFiles(options));
  }

  fileInfo(path: string): Promise<FileInfo> {
    return this.#guarded(() => this.#inner.fileInfo(path));
  }

  /** Checked when the download starts; the bytes then stream as they are. */
  downloadFile(path: string): Promise<{ info: FileInfo; body: AsyncIterable<Uint8Array> }> {
    return this.#guarded(() => this.#inner.downloadFile(path));
  }

  deleteFile(path: string): Promise<void> {
    return this.#guarded(() => this.#inner.deleteFile(path));
  }

  fetch(request: Request): Promise<Response> {
    return this.#guarded(() => this.#inner.fetch(request));
  }

  connect(): Promise<Duplex> {
    return this.#guarded(() => this.#inner.connect());
  }

  /** Stopping is always allowed: it only ends what this member holds. */
  stop(): Promise<void> {
    return this.#inner.stop();
  }

  info(): SessionInfo {
    return this.#inner.info();
  }

  async #guarded<T>(work: () => Promise<T>): Promise<T> {
    this.#guard();
    const result = await work();
    try {
      this.#guard();
    } catch (error) {
      // The answer is dropped; a container's response body would otherwise hold its connection.
      if (result instanceof Response) await result.body?.cancel().catch(() => {});
      throw error;
    }
    return result;
  }
}
