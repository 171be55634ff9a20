/**
 * The backend contract: the one interface every sandbox engine implements (QuickJS, isolated-vm,
 * containers, microVMs). A backend knows nothing of pools, identifiers, timers or HTTP: it creates a
 * session from a spec, runs code in it, moves files, forwards HTTP, and destroys it. The pool owns
 * every policy decision and never looks inside a backend.
 *
 * Rules every implementation follows (the conformance suite in test/suites checks them):
 * - Every rejection is a `SandpoolError` (see src/errors.ts); wrap engine errors with a clear message.
 * - `destroy` is idempotent and treats "already gone" as success; it releases everything `create` made.
 * - `execute` never rejects because of what the session code did: exceptions, timeouts, memory
 *   exhaustion and crashes are an `ExecutionOutcome` with `status: 'Failed'`. It rejects only when the
 *   request cannot be run at all (session gone, unsupported language).
 * - A timeout interrupts the code. `sessionState` then says whether the session kept its state,
 *   restarted its interpreter, or is lost (the pool replaces lost sessions).
 * - The pool, not the backend, keeps the executions of one session in order: it calls `execute`,
 *   `setEnvironment` and `checkpoint` for a session at most once at a time, in the order its caller
 *   asked (the session's chain, see Session in src/session.ts). A backend keeps no queue of its
 *   own for them; it may refuse an overlapping call for the same session with `SessionBusyError`,
 *   and never interleaves two. File operations and HTTP forwarding may overlap an execution.
 * - `destroy` may arrive while an execution runs (a stop, a pool close, an expiry): the backend
 *   ends that execution promptly (it rejects with a SandpoolError or resolves `Failed`) and frees
 *   the session once the execution has let go of it.
 * - Session code never receives a host object, a credential or a path outside its sandbox.
 */

import type { Duplex } from 'node:stream';

import type { ContainerType, CustomContainerTemplate, JsonValue, NetworkPolicy, SessionLimits } from './types.js';

export type Language = 'python' | 'javascript' | 'shell';
export type IsolationLevel = 'isolate' | 'container' | 'microvm';

/** Why a session was destroyed. `pauseExpired`: a paused session deleted after `maxPausedPeriodInSeconds`. */
export type DestroyReason = 'cooldown' | 'maxAlive' | 'stopped' | 'exited' | 'failed' | 'poolClosed' | 'pauseExpired';

/**
 * What a checkpoint keeps of a session:
 * - `machine`: everything, exactly (every process's memory, open files, sockets: a VM's RAM
 *   through QEMU migration, or a CRIU checkpoint);
 * - `interpreter`: the interpreters' serialisable state and the files under `/mnt/data`
 *   (variables, functions, classes, DataFrames); what cannot be kept is named in `lost`;
 * - `none`: the session cannot be paused.
 */
export type PauseLevel = 'none' | 'interpreter' | 'machine';

/** One piece of session state a checkpoint could not keep (named, never dropped silently). */
export interface LostState {
  /** `python`, `javascript`, `files` or `process`. */
  readonly language: string;
  /** The variable, thread, process or file. */
  readonly name: string;
  /** Its kind: a Python type name, `thread`, `process`, `handle`, `special file`… */
  readonly type: string;
  readonly reason: string;
}

export interface BackendCapabilities {
  /** Session kinds this backend can run. */
  readonly containerTypes: readonly ContainerType[];
  /** Languages `execute` accepts. */
  readonly languages: readonly Language[];
  readonly isolation: IsolationLevel;
  /** Sessions live inside the embedding Node process (memory is heap, not processes). */
  readonly inProcess: boolean;
  /** `files` is implemented (`/mnt/data`). */
  readonly files: boolean;
  /** Sessions can be given network egress (EgressEnabled). */
  readonly network: boolean;
  /** Sessions are restored from a warmed snapshot instead of booted. */
  readonly snapshots: boolean;
  /** `fetch` forwards HTTP to a port inside the session (custom containers). */
  readonly httpForwarding: boolean;
  /** What `checkpoint` keeps; absent or `none`: sessions cannot be paused (`pause()` is UnsupportedError). */
  readonly pause?: PauseLevel | undefined;
  /** A checkpoint can start new sessions while its source keeps running (`fork`, named snapshots). */
  readonly fork?: boolean | undefined;
}

/** Everything a backend needs to create one session. Plain data, already validated by the pool. */
export interface SessionSpec {
  /** Pool-assigned id, unique per process lifetime: `[a-z0-9-]{1,64}`, safe for labels and file names. */
  readonly sessionId: string;
  readonly poolName: string;
  /** Id of the owning pool instance, for labels that let a later start find leftovers of a crash. */
  readonly ownerId: string;
  readonly containerType: ContainerType;
  readonly limits: Readonly<SessionLimits>;
  readonly network: Readonly<NetworkPolicy>;
  readonly customContainer?: CustomContainerTemplate | undefined;
}

/** The backend's handle for a live session. The pool treats it as opaque. */
export interface BackendSession {
  /** Equals `SessionSpec.sessionId`. */
  readonly id: string;
  /** Id of the underlying resource (container id, VM id…), reported as Azure's `etag`. */
  readonly etag?: string | undefined;
}

/**
 * A backend's diagnostics (engine and accelerator choices, image or snapshot builds, leftovers
 * removed, fallbacks), given to the `onLog` option of every backend that has something to say.
 * Never carries secrets or session data.
 */
export interface BackendLogEvent {
  readonly level: 'info' | 'warn';
  readonly message: string;
  /** The session concerned, when there is one. */
  readonly sessionId?: string | undefined;
}

/** How a session ended on its own (process exit, crash), reported through `CreateOptions.onExit`. */
export interface SessionExit {
  readonly reason: 'exited' | 'failed';
  readonly message: string;
  readonly exitCode?: number | undefined;
}

export interface CreateOptions {
  readonly signal?: AbortSignal | undefined;
  /** Called at most once if the session ends by itself after `create` resolved. */
  readonly onExit: (exit: SessionExit) => void;
}

export interface ExecuteRequest {
  readonly language: Language;
  /** Source code; for `shell`, a command line run by `/bin/sh -c` unless `argv` is given. */
  readonly code: string;
  /** Shell only: run this program with these arguments, no shell parsing. */
  readonly argv?: readonly string[] | undefined;
  /** Shell only: bytes given on standard input. */
  readonly stdin?: string | undefined;
  /** Wall-clock limit. The backend interrupts the code when it passes. */
  readonly timeoutMs: number;
  /** Per-stream cap on stdout and stderr, in bytes (UTF-8). Output past it is cut and marked. */
  readonly outputMaxBytes: number;
  /**
   * Environment variables for this execution only, on top of the session's (`setEnvironment`).
   * Already validated (see src/environment.ts). Values are secrets: a backend never logs them or
   * puts them in an error message.
   */
  readonly env?: Readonly<Record<string, string>> | undefined;
}

/**
 * A piece of an execution's output, delivered while the code runs: text of one stream, or an
 * image the code displayed. The text pieces of a stream, joined, are exactly that stream's final
 * `stdout`/`stderr` (cut and marker included); images arrive in display order.
 */
export type OutputChunk =
  | { readonly type: 'stdout' | 'stderr'; readonly text: string }
  | { readonly type: 'display'; readonly image: ImageOutput };

export interface BackendExecuteOptions {
  /** Aborting interrupts the code like a timeout; `execute` then rejects with AbortedError. */
  readonly signal?: AbortSignal | undefined;
  /**
   * Called with each piece of output as it arrives, before `execute` resolves and never after.
   * It must not throw (the pool guards the caller's callback).
   */
  readonly onOutput?: ((chunk: OutputChunk) => void) | undefined;
}

/** An image the code displayed (matplotlib figure…), in Azure's result shape. */
export interface ImageOutput {
  readonly type: 'image';
  readonly format: 'png' | 'jpeg' | 'svg';
  readonly base64_data: string;
}

export interface ExecutionOutcome {
  readonly status: 'Succeeded' | 'Failed';
  /**
   * Azure semantics: the last expression's value as JSON where it is a JSON primitive, its
   * text/plain representation otherwise, an `ImageOutput` for a figure, `""` when there is none.
   */
  readonly result: JsonValue;
  readonly stdout: string;
  readonly stderr: string;
  readonly stdoutTruncated?: boolean | undefined;
  readonly stderrTruncated?: boolean | undefined;
  /** Shell: the process exit code. */
  readonly exitCode?: number | undefined;
  /** Set when the time limit interrupted the code. */
  readonly timedOut?: boolean | undefined;
  /** After this execution: state intact, interpreter restarted (state lost), or session unusable. */
  readonly sessionState: 'kept' | 'restarted' | 'lost';
  /** Further images beyond `result`, in display order. */
  readonly images?: readonly ImageOutput[] | undefined;
  readonly executionTimeInMilliseconds: number;
}

export interface FileInfo {
  /** Base name. */
  readonly name: string;
  /** Path relative to `/mnt/data`, POSIX separators, no leading slash. */
  readonly path: string;
  readonly type: 'file' | 'directory';
  readonly sizeInBytes: number;
  /** ISO 8601 timestamp. */
  readonly lastModifiedAt: string;
  readonly contentType?: string | undefined;
}

/**
 * Files under `/mnt/data`. Paths arrive already normalised by the pool (relative, no `.`/`..`
 * segments); the backend still refuses anything that resolves outside the data directory, such
 * as a symlink planted by session code.
 */
export interface BackendFiles {
  upload(
    session: BackendSession,
    path: string,
    data: AsyncIterable<Uint8Array>,
    options: { readonly maxBytes: number; readonly signal?: AbortSignal | undefined },
  ): Promise<FileInfo>;
  list(session: BackendSession, options: { readonly path: string; readonly recursive: boolean }): Promise<FileInfo[]>;
  stat(session: BackendSession, path: string): Promise<FileInfo>;
  download(
    session: BackendSession,
    path: string,
    options: { readonly signal?: AbortSignal | undefined },
  ): Promise<{ readonly info: FileInfo; readonly body: AsyncIterable<Uint8Array> }>;
  delete(session: BackendSession, path: string): Promise<void>;
}

export interface CheckpointOptions {
  /** An empty directory the caller owns (mode 0700): the backend writes the checkpoint's files into it. */
  readonly dir: string;
  /** Most bytes the checkpoint may take; past it the checkpoint fails (the sandbox is not trusted). */
  readonly maxBytes: number;
  /**
   * The caller destroys the session right after (a pause): the backend may leave it stopped and
   * move its files rather than copy them. Otherwise the session keeps running unchanged (a fork).
   */
  readonly final: boolean;
  readonly signal?: AbortSignal | undefined;
}

/** A written checkpoint. `meta` is the backend's own (JSON) data, handed back to `restore`. */
export interface Checkpoint {
  readonly level: Exclude<PauseLevel, 'none'>;
  /** Bytes the checkpoint occupies under its directory. */
  readonly bytes: number;
  /** What it could not keep. */
  readonly lost: readonly LostState[];
  readonly meta: JsonValue;
}

export interface RestoreOptions extends CreateOptions {
  /** The directory `checkpoint` wrote; read-only to the backend. */
  readonly dir: string;
  readonly checkpoint: Checkpoint;
  /**
   * Start a copy of the checkpointed session while others may exist (fork, named snapshot): random
   * generators and per-session identities are reseeded. False for a resume of the session itself.
   */
  readonly fork: boolean;
  /**
   * `interpreter` backends: a Ready session of the same pool (created from `spec`) to load the state
   * into. `machine` backends start a new session from `spec` instead and never receive one.
   */
  readonly into?: BackendSession | undefined;
}

export interface Restored {
  readonly session: BackendSession;
  /** What the restore could not bring back, beyond the checkpoint's own `lost`. */
  readonly lost: readonly LostState[];
}

/** Context for one-time, pool-wide work: checking the engine, building a snapshot, reconciling. */
export interface PrepareContext {
  readonly poolName: string;
  readonly ownerId: string;
  readonly containerType: ContainerType;
  readonly limits: Readonly<SessionLimits>;
  readonly network: Readonly<NetworkPolicy>;
  readonly customContainer?: CustomContainerTemplate | undefined;
  readonly signal?: AbortSignal | undefined;
}

export interface Backend {
  /** Short name: `quickjs`, `isolated-vm`, `container`, `vm`. */
  readonly name: string;
  readonly capabilities: BackendCapabilities;
  /**
   * Optional one-time preparation before the first `create`: capability checks with clear errors,
   * image or snapshot builds, and removal of leftovers from dead owners of this pool. Idempotent.
   */
  prepare?(context: PrepareContext): Promise<void>;
  create(spec: SessionSpec, options: CreateOptions): Promise<BackendSession>;
  execute(session: BackendSession, request: ExecuteRequest, options?: BackendExecuteOptions): Promise<ExecutionOutcome>;
  /**
   * Bind environment variables to a session (at acquire, before its first execution): every later
   * execution sees them, and so does every process it starts. Variables already bound keep their
   * values unless named again. Values are secrets (never logged, never in an error). Absent, or
   * rejecting with UnsupportedError, where sessions run no interpreter (custom containers).
   */
  setEnvironment?(session: BackendSession, env: Readonly<Record<string, string>>): Promise<void>;
  /** Idempotent; "already gone" is success. Wipes the session's data. */
  destroy(session: BackendSession, options: { readonly reason: DestroyReason }): Promise<void>;
  /** Present when `capabilities.files`. */
  readonly files?: BackendFiles | undefined;
  /** Present when `capabilities.httpForwarding`: forward a request to the session's target port. */
  fetch?(session: BackendSession, request: Request, options?: { readonly signal?: AbortSignal | undefined }): Promise<Response>;
  /**
   * Present when `capabilities.httpForwarding`: a raw byte stream to the session's target port, for
   * protocols `fetch` cannot carry (WebSocket upgrades). The caller owns and must destroy it.
   */
  connect?(session: BackendSession): Promise<Duplex>;
  /**
   * Present when `capabilities.pause` is `interpreter` or `machine`: write the session's state into
   * `options.dir` (see CheckpointOptions.final for what happens to the session).
   */
  checkpoint?(session: BackendSession, options: CheckpointOptions): Promise<Checkpoint>;
  /**
   * Present with `checkpoint`: bring a checkpoint back as a live session (into `options.into` for
   * interpreter-level checkpoints, as a new session from `spec` for machine-level ones). A missing
   * or corrupt checkpoint rejects with a BackendError naming it; nothing else is affected.
   */
  restore?(spec: SessionSpec, options: RestoreOptions): Promise<Restored>;
  /** Release backend-wide resources (engine connections, sockets, child processes). Idempotent. */
  close(): Promise<void>;
}
