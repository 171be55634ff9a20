/**
 * Pieces both in-process JavaScript backends share: their capabilities, request checks, a
 * per-session queue that keeps executions on one sandbox strictly in order, and environment binding.
 */

import type { BackendCapabilities, BackendExecuteOptions, ExecuteRequest, ExecutionOutcome } from '../../../src/backend.js';
import {
  AbortedError,
  InvalidRequestError,
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

/** Runs tasks one after another; a failed task does not stop the ones queued behind it. */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(task, task);
    this.#tail = next.catch(() => undefined);
    return next;
  }
}

export const MiB = 1024 * 1024;

/**
 * The controller `destroy` aborts. Its signal is made here, at creation: AbortController creates
 * it lazily, about 10 µs, and the first execute would otherwise pay that on the caller's path.
 */
export function destroyedController(): AbortController {
  const controller = new AbortController();
  void controller.signal;
  return controller;
}

/** What both isolate backends keep per session. */
export interface JsSessionRecord<S extends SandboxDriver> {
  readonly sandbox: S;
  readonly queue: SerialQueue;
  readonly memoryLimitMb: number;
  /** Aborted by destroy: ends an execution that waits between steps (on a sandbox timer). */
  readonly destroyed: AbortController;
}

/**
 * Run one execution on a session, in its queue, with the checks both isolate backends need: the
 * session may be destroyed while the execution waits or runs (the caller gets
 * SessionNotFoundError), and a session the engine reports lost is dropped and disposed at once.
 */
export function runQueuedJsExecution<S extends SandboxDriver>(
  backend: string,
  sessions: Map<string, JsSessionRecord<S>>,
  sessionId: string,
  request: ExecuteRequest,
  options: BackendExecuteOptions | undefined,
  dispose: (sandbox: S) => void,
): Promise<ExecutionOutcome> {
  const signal = options?.signal;
  const record = sessions.get(sessionId);
  if (record === undefined) throw new SessionNotFoundError(`${backend} session ${sessionId} does not exist (destroyed?)`);
  checkJsRequest(backend, request);
  const gone = (when: string) => new SessionNotFoundError(`${backend} session ${sessionId} was destroyed${when}`);
  return record.queue.run(async () => {
    if (sessions.get(sessionId) !== record) throw gone('');
    if (signal?.aborted) throw new AbortedError('the execution was aborted');
    const outcome = await runJsExecution(record.sandbox, request, {
      memoryLimitMb: record.memoryLimitMb,
      onOutput: options?.onOutput,
      signal: signal === undefined ? record.destroyed.signal : AbortSignal.any([record.destroyed.signal, signal]),
    }).catch((error: unknown) => {
      if (record.destroyed.signal.aborted) throw gone(' during the execution');
      throw toSandpoolError(error, `${backend} execution failed`);
    });
    if (sessions.get(sessionId) !== record) throw gone(' during the execution');
    if (outcome.sessionState === 'lost') {
      // Free the engine's memory now (a memory bomb's heap); a later destroy is a no-op.
      sessions.delete(sessionId);
      dispose(record.sandbox);
    }
    return outcome;
  });
}

/**
 * Bind environment variables to a session's sandbox (its read-only `env` object), in the session's
 * queue so it lands between executions.
 */
export function bindJsEnvironment<S extends SandboxDriver>(
  backend: string,
  sessions: Map<string, JsSessionRecord<S>>,
  sessionId: string,
  env: Readonly<Record<string, string>>,
): Promise<void> {
  const record = sessions.get(sessionId);
  if (record === undefined) {
    return Promise.reject(new SessionNotFoundError(`${backend} session ${sessionId} does not exist (destroyed?)`));
  }
  return record.queue.run(() => bindSandboxEnvironment(record.sandbox, env));
}
