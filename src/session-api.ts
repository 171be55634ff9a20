/**
 * The interfaces around a session: what it offers its caller (`SessionApi`, implemented by
 * `Session` and by cluster mode's `RemoteSession`) and what it needs from its pool (`SessionOwner`).
 */

import type { Duplex } from 'node:stream';

import type { Backend, DestroyReason, FileInfo } from './backend.js';
import type { SessionPoolEvents } from './events.js';
import type { ResolvedPoolOptions } from './options.js';
import type { ByteSource } from './pool/byte-source.js';
import type { Slot } from './pool/slot.js';
import type { Session } from './session.js';
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
  /** An execution (or another exclusive operation) was accepted: it runs now or queues. */
  executionBegan(slot: Slot): void;
  /** An execution on the slot settled: the pool may now reap it if it expired meanwhile. */
  idle(slot: Slot): void;
  expiresAt(slot: Slot): number | undefined;
  /** Count a finished execution; the first on a session feeds the first-execution timing. */
  executed(durationMs: number, first: boolean): void;
  /** Write the (Allocated, idle) slot's state to disk; the slot becomes Paused. */
  pause(slot: Slot, trigger: 'requested' | 'idle'): Promise<PauseResult>;
  /** Bring a Paused slot's session back; resolves with the slot it now lives in (already bound to `session`). */
  resume(slot: Slot, session: Session, acquire: AcquireOptions): Promise<{ slot: Slot; result: ResumeResult }>;
  /** Keep a paused session on disk until at least `until` (epoch ms); resolves with its deletion time. */
  extendPaused(slot: Slot, until: number): number;
  /** A copy of this session under `identifier` (a fork through a transient snapshot). */
  fork(session: Session, identifier: string): Promise<Session>;
}
