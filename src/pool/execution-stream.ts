/**
 * `executeStream` on top of any `execute(options)` that honours `onOutput` and `signal`: output
 * chunks are queued as they arrive and yielded in order, then the result's value and `end`. The
 * execution starts with the iteration; breaking out of the loop (or aborting the signal)
 * interrupts it like a timeout. Memory is bounded by the execution's own output cap.
 */

import type { OutputChunk } from '../backend.js';
import type { ExecuteOptions, ExecuteStreamOptions, ExecutionEvent, ExecutionResult } from '../session-types.js';

/** The events an execution ends with: its value when it produced one, then `end`. */
export function finalEvents(result: ExecutionResult): ExecutionEvent[] {
  const events: ExecutionEvent[] = [];
  if (result.result !== '') events.push({ type: 'result', result: result.result });
  events.push({ type: 'end', ...result });
  return events;
}

/** A finished execution's output as `onOutput` chunks, for sessions that cannot stream it live. */
export function replayOutput(result: ExecutionResult, onOutput: (chunk: OutputChunk) => void): void {
  const chunks: OutputChunk[] = [];
  if (result.stdout !== '') chunks.push({ type: 'stdout', text: result.stdout });
  if (result.stderr !== '') chunks.push({ type: 'stderr', text: result.stderr });
  for (const image of result.images) chunks.push({ type: 'display', image });
  for (const chunk of chunks) {
    try {
      onOutput(chunk);
    } catch {
      // As for live output: the caller's failure does not change the execution.
    }
  }
}

export async function* streamExecution(
  execute: (options: ExecuteOptions) => Promise<ExecutionResult>,
  options: ExecuteOptions,
  streamOptions: ExecuteStreamOptions = {},
): AsyncGenerator<ExecutionEvent, void, undefined> {
  const stop = new AbortController();
  const signals = [stop.signal, options.signal, streamOptions.signal].filter((s): s is AbortSignal => s !== undefined);
  const queue: ExecutionEvent[] = [];
  let wake: (() => void) | undefined;
  let settled = false;
  let failure: { error: unknown } | undefined;
  const push = (event: ExecutionEvent): void => {
    queue.push(event);
    wake?.();
  };
  const caller = options.onOutput;
  const run = execute({
    ...options,
    signal: AbortSignal.any(signals),
    onOutput: (chunk: OutputChunk) => {
      push(chunk);
      caller?.(chunk);
    },
  }).then(
    (result) => {
      for (const event of finalEvents(result)) push(event);
    },
    (error: unknown) => {
      failure = { error };
    },
  );
  void run.finally(() => {
    settled = true;
    wake?.();
  });
  try {
    for (;;) {
      while (queue.length > 0) yield queue.shift()!;
      if (settled) {
        if (failure !== undefined) throw failure.error;
        return;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  } finally {
    // The consumer stopped early: nobody reads the rest, so interrupt the code.
    if (!settled) stop.abort();
  }
}
