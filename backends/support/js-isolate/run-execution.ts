/**
 * One execution in an in-process JavaScript sandbox, engine-agnostic: run the cell as a global
 * script, await its value if it is a promise, drain microtasks and sandbox timers until nothing is
 * left, all within one wall-clock deadline, then render the result with Azure's semantics.
 *
 * The engine-specific part is a `SandboxDriver` (QuickJS, isolated-vm). It only moves strings and
 * numbers across the boundary; all rendering happens in the sandbox prelude (sandbox-prelude.ts).
 */

import type { ExecuteRequest, ExecutionOutcome, OutputChunk } from '../../../src/backend.js';
import { AbortedError, BackendError } from '../../../src/errors.js';
import { OutputBuffer, truncationMarker } from './output-buffer.js';
import { prepareTopLevelAwait } from './top-level-await.js';

/** Why a driver step did not complete normally. */
export type Fault =
  /** Session code threw; `text` is the rendered error. The sandbox is fine. */
  | { readonly kind: 'error'; readonly text: string }
  /** The deadline passed and the engine interrupted the code. */
  | { readonly kind: 'timeout' }
  /** The engine hit its memory limit. */
  | { readonly kind: 'memory'; readonly text: string }
  /** The sandbox is unusable (engine failure, disposed isolate). */
  | { readonly kind: 'crash'; readonly text: string };

export type Step<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly fault: Fault };

/** Functions of the prelude's API object that the host calls with numeric (or, for env, JSON string) arguments. */
export type PreludeCall =
  | 'begin'
  | 'drain'
  | 'poll'
  | 'status'
  | 'nextTimer'
  | 'runTimer'
  | 'clearTimers'
  | 'render'
  | 'renderError'
  | 'bindEnv'
  | 'beginEnv'
  | 'endEnv';

export interface SandboxDriver {
  /**
   * Run `code` as a global script (so `var`, `let`, `const` and `class` persist) and pass its
   * completion value to the prelude's `settle`. Resolves with settle's status string, or a fault.
   */
  runScript(code: string, timeLeftMs: number): Promise<Step<string>>;
  /** Call a prelude API function; the value is a string or number (anything else is a crash). */
  call(name: PreludeCall, args: readonly (number | string)[], timeLeftMs: number): Promise<Step<string | number>>;
  /** Run pending promise jobs until there are none (engines that do not do it themselves). */
  runJobs(timeLeftMs: number): Promise<Step<void>>;
  /** True when jobs are still queued (QuickJS); engines that drop them on interrupt say false. */
  hasPendingJobs(): boolean;
}

export interface ExecutionContext {
  readonly memoryLimitMb: number;
  readonly signal?: AbortSignal | undefined;
  /** Receives console output after every step (a script run, a drained job queue, a timer). */
  readonly onOutput?: ((chunk: OutputChunk) => void) | undefined;
}

/**
 * Bind variables to a sandbox: its read-only `env` object holds them from now on (a later call adds
 * or replaces names). The JSON travels as a string and is parsed inside the sandbox.
 */
export async function bindSandboxEnvironment(driver: SandboxDriver, env: Readonly<Record<string, string>>): Promise<void> {
  const step = await driver.call('bindEnv', [JSON.stringify(env)], 1000);
  if (!step.ok) throw new BackendError('the sandbox could not take its environment variables');
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

class FaultSignal {
  constructor(readonly fault: Fault) {}
}

function unwrap<T>(step: Step<T>): T {
  if (!step.ok) throw new FaultSignal(step.fault);
  return step.value;
}

/** Parse what the prelude's `render` returned, trusting nothing: only JSON primitives pass. */
function parseResult(text: unknown, maxChars: number): string | number | boolean | null {
  if (typeof text !== 'string') return '';
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return '';
  }
  if (typeof value === 'string') {
    return value.length > maxChars ? value.slice(0, maxChars) + truncationMarker(maxChars) : value;
  }
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return value;
  return '';
}

interface Polled {
  readonly state: string;
  readonly nextTimer: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly rendered: string | null;
}

/** What the prelude's `poll` returned, trusting nothing: a malformed answer is a crashed sandbox. */
function parsePoll(text: string | number): Polled {
  let value: unknown;
  try {
    value = typeof text === 'string' ? JSON.parse(text) : undefined;
  } catch {
    value = undefined;
  }
  if (
    !Array.isArray(value) ||
    typeof value[0] !== 'string' ||
    typeof value[2] !== 'string' ||
    typeof value[3] !== 'string' ||
    !(typeof value[4] === 'string' || value[4] === null)
  ) {
    throw new FaultSignal({ kind: 'crash', text: 'the sandbox prelude answered poll with something unexpected' });
  }
  // A wait that is not a finite number means no timer is pending (as `nextTimer` answered before).
  const nextTimer = typeof value[1] === 'number' && Number.isFinite(value[1]) ? value[1] : -1;
  return { state: value[0], nextTimer, stdout: value[2], stderr: value[3], rendered: value[4] as string | null };
}

/** Run one execution through `driver`. Never rejects for what the code did; only for an abort. */
export async function runJsExecution(
  driver: SandboxDriver,
  request: ExecuteRequest,
  context: ExecutionContext,
): Promise<ExecutionOutcome> {
  const started = performance.now();
  const deadline = started + request.timeoutMs;
  const left = (): number => Math.max(0, deadline - performance.now());
  const stdoutBuffer = new OutputBuffer(request.outputMaxBytes);
  const stderrBuffer = new OutputBuffer(request.outputMaxBytes);
  // What a buffer keeps also goes to the live reader, so the pieces it saw join to the final text.
  const stream = (buffer: OutputBuffer, type: 'stdout' | 'stderr') => ({
    write(text: string): void {
      const kept = buffer.write(text);
      if (kept === '' || context.onOutput === undefined) return;
      try {
        context.onOutput({ type, text: kept });
      } catch {
        // A failing reader must not change the execution.
      }
    },
  });
  const stdout = stream(stdoutBuffer, 'stdout');
  const stderr = stream(stderrBuffer, 'stderr');
  const maxChars = request.outputMaxBytes;
  /** Move the sandbox's buffered console output into the capped host buffers; trust nothing. */
  const drain = async (): Promise<void> => {
    const step = await driver.call('drain', [], 1000);
    if (!step.ok || typeof step.value !== 'string') return;
    let streams: unknown;
    try {
      streams = JSON.parse(step.value);
    } catch {
      return;
    }
    if (!Array.isArray(streams)) return;
    if (typeof streams[0] === 'string') stdout.write(streams[0]);
    if (typeof streams[1] === 'string') stderr.write(streams[1]);
  };
  let status: 'Succeeded' | 'Failed' = 'Succeeded';
  let result: string | number | boolean | null = '';
  let timedOut = false;
  let sessionState: ExecutionOutcome['sessionState'] = 'kept';
  const env = request.env !== undefined && Object.keys(request.env).length > 0 ? JSON.stringify(request.env) : undefined;
  try {
    // This execution's variables, over the session's, until it ends (endEnv below).
    if (env !== undefined) unwrap(await driver.call('beginEnv', [env], 1000));
    // Most cells have no `await`: skip the async rewrite step (and its turn) for them.
    const code = /\bawait\b/.test(request.code) ? await prepareTopLevelAwait(request.code) : request.code;
    // One more character than the byte cap: a stream the sandbox cut still overflows the host's cap.
    unwrap(await driver.call('begin', [maxChars + 1], 1000));
    let state = unwrap(await driver.runScript(code, left()));
    let rendered: string | null = null;
    for (;;) {
      if (context.signal?.aborted) throw new AbortedError('the execution was aborted');
      unwrap(await driver.runJobs(left()));
      // Output so far, the cell's state, the next timer and, once nothing is left to run, the result.
      const polled = parsePoll(unwrap(await driver.call('poll', [maxChars + 1], left())));
      stdout.write(polled.stdout);
      stderr.write(polled.stderr);
      state = polled.state;
      // An uncaught error ends the execution at once, like an uncaught exception ends a Node script.
      if (state === 'uncaught' || state === 'rejected') break;
      // -1 means no timer is pending; anything else is a wait in milliseconds (never negative).
      if (polled.nextTimer === -1) {
        rendered = polled.rendered;
        break;
      }
      const next = Math.max(0, polled.nextTimer);
      if (next >= left()) {
        await sleep(left(), context.signal);
        if (context.signal?.aborted) throw new AbortedError('the execution was aborted');
        throw new FaultSignal({ kind: 'timeout' });
      }
      if (next > 0) await sleep(next, context.signal);
      if (context.signal?.aborted) throw new AbortedError('the execution was aborted');
      unwrap(await driver.call('runTimer', [], left()));
    }
    if (state !== 'fulfilled') {
      // Timers of a failed cell must not fire during the next one.
      unwrap(await driver.call('clearTimers', [], 1000));
    }
    if (state === 'fulfilled') {
      result = parseResult(rendered ?? unwrap(await driver.call('render', [maxChars + 1], left())), maxChars);
    } else if (state === 'pending') {
      status = 'Failed';
      stderr.write('Error: the result promise never settled and nothing is left to run (no pending timers or jobs)\n');
    } else {
      status = 'Failed';
      stderr.write(`${String(unwrap(await driver.call('renderError', [], left())))}\n`);
    }
  } catch (error) {
    if (!(error instanceof FaultSignal)) {
      await driver.call('clearTimers', [], 1000);
      if (env !== undefined) await driver.call('endEnv', [], 1000);
      throw error;
    }
    status = 'Failed';
    result = '';
    const fault = error.fault;
    // What the code printed before it failed or was interrupted (a lost sandbox has nothing).
    if (fault.kind === 'error' || fault.kind === 'timeout') await drain();
    switch (fault.kind) {
      case 'error':
        stderr.write(`${fault.text}\n`);
        // Timers the cell set before it threw must not fire during the next one.
        if (!(await driver.call('clearTimers', [], 1000)).ok) sessionState = 'lost';
        break;
      case 'timeout': {
        timedOut = true;
        const seconds = Math.round(request.timeoutMs) / 1000;
        stderr.write(
          `Request timed out waiting for code execution to complete after ${seconds} seconds: execution interrupted\n`,
        );
        // Timers and jobs of the interrupted cell must not fire during the next one.
        const cleared = await driver.call('clearTimers', [], 1000);
        if (!cleared.ok || driver.hasPendingJobs()) sessionState = 'lost';
        break;
      }
      case 'memory':
        stderr.write(`Execution aborted: ${fault.text} (memory limit ${context.memoryLimitMb} MiB)\n`);
        sessionState = 'lost';
        break;
      case 'crash':
        stderr.write(`Execution aborted: ${fault.text}\n`);
        sessionState = 'lost';
        break;
    }
  }
  if (env !== undefined && sessionState !== 'lost' && !(await driver.call('endEnv', [], 1000)).ok) sessionState = 'lost';
  if (sessionState === 'lost') stderr.write('The session was lost and will be replaced; its state is gone.\n');
  return {
    status,
    result,
    stdout: stdoutBuffer.text(),
    stderr: stderrBuffer.text(),
    stdoutTruncated: stdoutBuffer.truncated,
    stderrTruncated: stderrBuffer.truncated,
    timedOut,
    sessionState,
    executionTimeInMilliseconds: Math.round(performance.now() - started),
  };
}
