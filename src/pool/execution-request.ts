/**
 * What the pool checks and fills in before a backend sees an execution, and how it turns the
 * backend's outcome into the public `ExecutionResult`. Pure functions: the Session calls them.
 */

import type { Backend, ExecuteRequest, ExecutionOutcome, Language } from '../backend.js';
import { parseEnvironment } from '../environment.js';
import { ExecutionTimeoutError, InvalidRequestError } from '../errors.js';
import type { ResolvedPoolOptions } from '../options.js';
import type { ExecuteOptions, ExecutionResult } from '../session-types.js';

const LANGUAGE_OF: Record<ResolvedPoolOptions['containerType'], Language | undefined> = {
  PythonLTS: 'python',
  NodeLTS: 'javascript',
  Shell: 'shell',
  CustomContainer: undefined,
};

function resolveLanguage(requested: Language | undefined, backend: Backend, options: ResolvedPoolOptions): Language {
  const language = requested ?? LANGUAGE_OF[options.containerType];
  if (language === undefined) {
    throw new InvalidRequestError('CustomContainer sessions run no code through execute(); use fetch()');
  }
  if (!backend.capabilities.languages.includes(language)) {
    throw new InvalidRequestError(
      `backend "${backend.name}" cannot run ${language} (it runs: ${backend.capabilities.languages.join(', ')})`,
    );
  }
  if (options.containerType === 'Shell' && language !== 'shell') {
    throw new InvalidRequestError('Shell pools run shell commands only');
  }
  return language;
}

/**
 * Validate a caller's execute options against the pool and build the backend request. The pool's
 * limits are ceilings: a caller may ask for less time or output, never more.
 * @throws {InvalidRequestError} naming the first problem
 */
export function toExecuteRequest(input: ExecuteOptions, backend: Backend, options: ResolvedPoolOptions): ExecuteRequest {
  if (input === null || typeof input !== 'object') throw new InvalidRequestError('execute() needs an options object');
  const language = resolveLanguage(input.language, backend, options);
  const hasArgv = input.argv !== undefined;
  if (hasArgv && (language !== 'shell' || !Array.isArray(input.argv) || input.argv.length === 0)) {
    throw new InvalidRequestError('argv must be a non-empty array of strings, for shell sessions only');
  }
  if (hasArgv && input.argv!.some((a) => typeof a !== 'string')) {
    throw new InvalidRequestError('argv must contain strings only');
  }
  if (!hasArgv && typeof input.code !== 'string') throw new InvalidRequestError('code must be a string');
  if (input.stdin !== undefined && (language !== 'shell' || typeof input.stdin !== 'string')) {
    throw new InvalidRequestError('stdin must be a string, for shell sessions only');
  }
  const limits = options.limits;
  const requested = input.timeoutInSeconds;
  if (requested !== undefined && (typeof requested !== 'number' || !(requested > 0))) {
    throw new InvalidRequestError('timeoutInSeconds must be a positive number');
  }
  const seconds = Math.min(requested ?? limits.executionTimeoutSeconds, limits.executionTimeoutSeconds);
  const cap = input.outputMaxBytes;
  if (cap !== undefined && (!Number.isInteger(cap) || cap < 1)) {
    throw new InvalidRequestError('outputMaxBytes must be a positive integer');
  }
  if (input.onOutput !== undefined && typeof input.onOutput !== 'function') {
    throw new InvalidRequestError('onOutput must be a function');
  }
  const env = parseEnvironment(input.env, 'env');
  return {
    language,
    code: input.code ?? '',
    argv: input.argv,
    stdin: input.stdin,
    timeoutMs: Math.round(seconds * 1000),
    outputMaxBytes: Math.min(cap ?? limits.outputMaxBytes, limits.outputMaxBytes),
    ...(env !== undefined && Object.keys(env).length > 0 ? { env } : {}),
  };
}

/** The outcome of an execution whose session died under it (the backend rejected mid-run). */
export function lostOutcome(reason: string, startedAt: number): ExecutionOutcome {
  return {
    status: 'Failed',
    result: '',
    stdout: '',
    stderr: `Execution aborted: the session was lost (${reason}); it has been replaced.`,
    sessionState: 'lost',
    executionTimeInMilliseconds: Date.now() - startedAt,
  };
}

/** The public result: Azure's fields, truncation flags, and what became of the session. */
export function toExecutionResult(id: string, outcome: ExecutionOutcome, replaced: boolean, timeoutMs: number): ExecutionResult {
  return {
    id,
    status: outcome.status,
    result: outcome.result,
    stdout: outcome.stdout,
    stderr: outcome.stderr,
    executionTimeInMilliseconds: outcome.executionTimeInMilliseconds,
    exitCode: outcome.exitCode,
    truncated: { stdout: outcome.stdoutTruncated === true, stderr: outcome.stderrTruncated === true },
    images: outcome.images ?? [],
    sessionState: replaced ? 'replaced' : outcome.sessionState === 'restarted' ? 'restarted' : 'kept',
    error: outcome.timedOut
      ? new ExecutionTimeoutError(`execution exceeded its ${timeoutMs / 1000} s limit and was interrupted`)
      : undefined,
  };
}
