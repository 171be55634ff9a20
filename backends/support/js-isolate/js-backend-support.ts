/**
 * Pieces both in-process JavaScript backends share: their capabilities, request checks, one
 * execution at a time per sandbox with what a destroy during it needs, and environment binding.
 * Executions of one session arrive in order from the pool (the backend contract, src/backend.ts);
 * nothing here queues them.
 */

import type { BackendCapabilities, BackendExecuteOptions, ExecuteRequest, ExecutionOutcome } from '../../../src/backend.js';
import {
  AbortedError,
  InvalidRequestError,
  SessionBusyError,
  SessionNotFoundError,
  UnsupportedError,
  toSandpoolError,
} from '../../../src/errors.js';
import { bindSandboxEnvironment, runJsExecution, type SandboxDriver } from './run-execution.js';

/** In-process isolates run JavaScript only, with no files, network, snapshots or HTTP. */
export const JS_ISOLATE_CAPABILITIES: BackendCapabilities = Object.freeze({
  containerTypes: Object.freeze(['NodeLTS'] as const),
  languages: Object.freeze(['javascript'] as const),
  isolation: 'isolate',
  inProcess: true,
  files: false,
  network: false,
  snapshots: false,
  httpForwarding: false,
});

/** Reject requests this backend cannot run at all, with a typed error. */
export function checkJsRequest(backend: string, request: ExecuteRequest): void {
  if (request.language !== 'javascript') {
    throw new UnsupportedError(`the ${backend} backend runs javascript only, not ${String(request.language)}`);
  }
  if (typeof request.code !== 'string') throw new InvalidRequestError('code must be a string');
  if (!(Number.isFinite(request.timeoutMs) && request.timeoutMs > 0)) {
    throw new InvalidRequestError(`timeoutMs must be a positive number of milliseconds, got ${String(request.timeoutMs)}`);
  }
  if (!(Number.isInteger(request.outputMaxBytes) && request.outputMaxBytes >= 1)) {
    throw new InvalidRequestError(`outputMaxBytes must be a positive integer, got ${String(request.outputMaxBytes)}`);
  }
  if (request.argv !== undefined || request.stdin !== undefined) {
    throw new UnsupportedError(`argv and stdin are for shell sessions; the ${backend} backend runs javascript`);
  }
}

export const MiB = 1024 * 1024;

/** What both isolate backends keep per session. */
export interface JsSessionRecord<S extends SandboxDriver> {
  readonly sandbox: S;
  readonly memoryLimitMb: number;
  /** Aborted by destroy: ends an execution that waits between steps (on a sandbox timer). */
  readonly destroyed: AbortController;
  /** The call in progress on the sandbox, if any: destroy waits for it to let go before freeing it. */
  running: Promise<unknown> | undefined;
}

export function newJsSessionRecord<S extends SandboxDriver>(sandbox: S, memoryLimitMb: number): JsSessionRecord<S> {
  const destroyed = new AbortController();
  // AbortController makes its signal lazily (about 10 µs): make it now, not on the first execute.
  void destroyed.signal;
  return { sandbox, memoryLimitMb, destroyed, running: undefined };
}

/** The session's record, free for one call: SessionNotFoundError when gone, SessionBusyError when in use. */
function idleRecord<S extends SandboxDriver>(
  backend: string,
  sessions: Map<string, JsSessionRecord<S>>,
  sessionId: string,
): JsSessionRecord<S> {
  const record = sessions.get(sessionId);
  if (record === undefined) throw new SessionNotFoundError(`${backend} session ${sessionId} does not exist (destroyed?)`);
  if (record.running !== undefined) {
    // The pool never overlaps calls on one session; a direct caller that does is refused, since a
    // sandbox cannot run two cells at once.
    throw new SessionBusyError(`${backend} session ${sessionId} is already running an execution`);
  }
  return record;
}

/**
 * Run one execution on a session with the checks both isolate backends need: the session may be
 * destroyed while the execution runs (the caller gets SessionNotFoundError), and a session the
 * engine reports lost is dropped and disposed at once.
 */
export async function runJsSessionExecution<S extends SandboxDriver>(
  backend: string,
  sessions: Map<string, JsSessionRecord<S>>,
  sessionId: string,
  request: ExecuteRequest,
  options: BackendExecuteOptions | undefined,
  dispose: (sandbox: S) => void,
): Promise<ExecutionOutcome> {
  const record = idleRecord(backend, sessions, sessionId);
  checkJsRequest(backend, request);
  const signal = options?.signal;
  if (signal?.aborted) throw new AbortedError('the execution was aborted');
  const gone = () => new SessionNotFoundError(`${backend} session ${sessionId} was destroyed during the execution`);
  const running = runJsExecution(record.sandbox, request, {
    memoryLimitMb: record.memoryLimitMb,
    onOutput: options?.onOutput,
    signal: signal === undefined ? record.destroyed.signal : AbortSignal.any([record.destroyed.signal, signal]),
  });
  record.running = running;
  let outcome: ExecutionOutcome;
  try {
    outcome = await running;
  } catch (error) {
    if (record.destroyed.signal.aborted) throw gone();
    throw toSandpoolError(error, `${backend} execution failed`);
  } finally {
    record.running = undefined;
  }
  if (sessions.get(sessionId) !== record) throw gone();
  if (outcome.sessionState === 'lost') {
    // Free the engine's memory now (a memory bomb's heap); a later destroy is a no-op.
    sessions.delete(sessionId);
    dispose(record.sandbox);
  }
  return outcome;
}

/** Bind environment variables to a session's sandbox (its read-only `env` object), between executions. */
export async function bindJsEnvironment<S extends SandboxDriver>(
  backend: string,
  sessions: Map<string, JsSessionRecord<S>>,
  sessionId: string,
  env: Readonly<Record<string, string>>,
): Promise<void> {
  const record = idleRecord(backend, sessions, sessionId);
  const binding = bindSandboxEnvironment(record.sandbox, env);
  record.running = binding;
  try {
    await binding;
  } finally {
    record.running = undefined;
  }
}

/** End a session's call in progress (if any) and wait until it has let go of the sandbox. */
export async function stopJsSession(record: JsSessionRecord<SandboxDriver>): Promise<void> {
  record.destroyed.abort();
  await record.running?.catch(() => undefined);
}
