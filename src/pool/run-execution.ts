/**
 * One execution of a session, when its turn in the session's chain has come: the backend call
 * with the caller's output callback guarded, Azure's semantics for a sandbox that dies under the
 * code (the execution fails and the session is replaced), the counters and the events.
 */

import type { BackendSession, ExecutionOutcome, OutputChunk } from '../backend.js';
import { ErrorCode, toSandpoolError } from '../errors.js';
import type { SessionOwner } from '../session-api.js';
import type { ExecuteOptions, ExecutionResult } from '../session-types.js';
import { lostOutcome, toExecuteRequest, toExecutionResult } from './execution-request.js';
import type { Slot } from './slot.js';

export interface ExecutionRun {
  readonly options: ExecuteOptions;
  readonly id: string;
  readonly queuedAt: number;
  readonly identifier: string;
}

/** `countFinished` counts the execution on its session and says whether it was the first. */
export async function runExecution(
  owner: SessionOwner,
  slot: Slot,
  handle: BackendSession,
  run: ExecutionRun,
  countFinished: () => boolean,
): Promise<ExecutionResult> {
  const { options, id, queuedAt, identifier } = run;
  const { backend } = owner;
  const request = toExecuteRequest(options, backend, owner.options());
  const started = Date.now();
  const base = {
    pool: owner.options().name,
    backend: backend.name,
    sessionId: slot.id,
    identifier,
    executionId: id,
  };
  if (owner.listening('executionStarted')) {
    owner.emit('executionStarted', { ...base, at: started, language: request.language, queueMs: started - queuedAt });
  }
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
  owner.executed(Date.now() - started, countFinished());
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
