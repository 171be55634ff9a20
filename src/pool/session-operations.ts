/**
 * What a session does once allocated: executions (one at a time, FIFO, bounded queue), files and
 * HTTP forwarding. The pool's lifecycle bookkeeping stays in SessionPool; this file only needs the
 * small `PoolInternals` view of it.
 */

import type { Duplex } from 'node:stream';

import type { Backend, DestroyReason, ExecutionOutcome, FileInfo, Language } from '../backend.js';
import type { SessionPoolEvents } from '../events.js';
import {
  ErrorCode,
  ExecutionTimeoutError,
  InvalidRequestError,
  SessionBusyError,
  SessionNotFoundError,
  UnsupportedError,
  toSandpoolError,
  type SandpoolError,
} from '../errors.js';
import type { ResolvedPoolOptions } from '../options.js';
import type { SessionHost } from '../session.js';
import type { ExecuteOptions, ExecutionResult, SessionInfo } from '../session-types.js';
import { toByteChunks } from './byte-source.js';
import { normaliseDataPath } from './file-paths.js';
import type { Slot } from './slot.js';

export interface PoolInternals {
  readonly backend: Backend;
  readonly options: ResolvedPoolOptions;
  emit<K extends keyof SessionPoolEvents>(event: K, payload: Parameters<SessionPoolEvents[K]>[0]): void;
  /** Whether anyone listens to `event` (payloads are built only then). */
  listening(event: keyof SessionPoolEvents): boolean;
  /** Record activity: restarts the cooldown. */
  touch(slot: Slot): void;
  /** Executions on the slot finished; the pool may now reap it if it expired meanwhile. */
  executionsSettled(slot: Slot): void;
  destroy(slot: Slot, reason: DestroyReason, message?: string): Promise<void>;
  expiresAt(slot: Slot): number | undefined;
  /** Count a finished execution (the first on a session feeds the first-execution timing). */
  recordExecution(slot: Slot, durationMs: number): void;
}

const LANGUAGE_OF: Record<ResolvedPoolOptions['containerType'], Language | undefined> = {
  PythonLTS: 'python',
  NodeLTS: 'javascript',
  Shell: 'shell',
  CustomContainer: undefined,
};

let executionCounter = 0;

/** Longest single extension: a year keeps every deadline far inside a timer's and a Date's range. */
export const MAX_EXTEND_SECONDS = 365 * 24 * 3600;

function requireLive(slot: Slot): NonNullable<Slot['handle']> {
  if (slot.state !== 'Allocated' || slot.handle === undefined) {
    throw new SessionNotFoundError(`session ${slot.id} no longer exists (it was destroyed); acquire the identifier again`);
  }
  return slot.handle;
}

export function createSessionHost(pool: PoolInternals): SessionHost {
  const { backend } = pool;

  function resolveLanguage(requested: Language | undefined): Language {
    const poolLanguage = LANGUAGE_OF[pool.options.containerType];
    const language = requested ?? poolLanguage;
    if (language === undefined) {
      throw new InvalidRequestError('CustomContainer sessions run no code through execute(); use fetch()');
    }
    if (!backend.capabilities.languages.includes(language)) {
      throw new InvalidRequestError(
        `backend "${backend.name}" cannot run ${language} (it runs: ${backend.capabilities.languages.join(', ')})`,
      );
    }
    if (pool.options.containerType === 'Shell' && language !== 'shell') {
      throw new InvalidRequestError('Shell pools run shell commands only');
    }
    return language;
  }

  function validate(options: ExecuteOptions): { language: Language; timeoutMs: number; outputMaxBytes: number } {
    if (options === null || typeof options !== 'object') throw new InvalidRequestError('execute() needs an options object');
    const language = resolveLanguage(options.language);
    const hasArgv = options.argv !== undefined;
    if (hasArgv && (language !== 'shell' || !Array.isArray(options.argv) || options.argv.length === 0)) {
      throw new InvalidRequestError('argv must be a non-empty array of strings, for shell sessions only');
    }
    if (hasArgv && options.argv!.some((a) => typeof a !== 'string')) {
      throw new InvalidRequestError('argv must contain strings only');
    }
    if (!hasArgv && typeof options.code !== 'string') throw new InvalidRequestError('code must be a string');
    if (options.stdin !== undefined && (language !== 'shell' || typeof options.stdin !== 'string')) {
      throw new InvalidRequestError('stdin must be a string, for shell sessions only');
    }
    const limits = pool.options.limits;
    const requested = options.timeoutInSeconds;
    if (requested !== undefined && (typeof requested !== 'number' || !(requested > 0))) {
      throw new InvalidRequestError('timeoutInSeconds must be a positive number');
    }
    // The pool's limit is a ceiling: a caller may ask for less time, never more.
    const seconds = Math.min(requested ?? limits.executionTimeoutSeconds, limits.executionTimeoutSeconds);
    const cap = options.outputMaxBytes;
    if (cap !== undefined && (!Number.isInteger(cap) || cap < 1)) {
      throw new InvalidRequestError('outputMaxBytes must be a positive integer');
    }
    return {
      language,
      timeoutMs: Math.round(seconds * 1000),
      outputMaxBytes: Math.min(cap ?? limits.outputMaxBytes, limits.outputMaxBytes),
    };
  }

  function toResult(id: string, outcome: ExecutionOutcome, replaced: boolean, timeoutMs: number): ExecutionResult {
    const error: SandpoolError | undefined = outcome.timedOut
      ? new ExecutionTimeoutError(`execution exceeded its ${timeoutMs / 1000} s limit and was interrupted`)
      : undefined;
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
      error,
    };
  }

  async function runOne(slot: Slot, options: ExecuteOptions, id: string, queuedAt: number): Promise<ExecutionResult> {
    const { language, timeoutMs, outputMaxBytes } = validate(options);
    const handle = requireLive(slot);
    const identifier = slot.identifier ?? '';
    const started = Date.now();
    const base = { pool: pool.options.name, backend: backend.name, sessionId: slot.id, identifier, executionId: id };
    if (pool.listening('executionStarted')) {
      pool.emit('executionStarted', { ...base, at: started, language, queueMs: started - queuedAt });
    }
    pool.touch(slot);
    let outcome: ExecutionOutcome;
    let replaced = false;
    try {
      outcome = await backend.execute(
        handle,
        { language, code: options.code ?? '', argv: options.argv, stdin: options.stdin, timeoutMs, outputMaxBytes },
        { signal: options.signal },
      );
    } catch (error) {
      const failure = toSandpoolError(error, 'execution failed');
      if (failure.code === ErrorCode.INVALID_REQUEST || failure.code === ErrorCode.UNSUPPORTED) throw failure;
      // The session died under the code (process, container or VM gone): fail this execution at
      // once with Azure's semantics and replace the session.
      replaced = true;
      outcome = {
        status: 'Failed',
        result: '',
        stdout: '',
        stderr: `Execution aborted: the session was lost (${failure.message}); it has been replaced.`,
        sessionState: 'lost',
        executionTimeInMilliseconds: Date.now() - started,
      };
      void pool.destroy(slot, 'failed', failure.message);
    }
    if (!replaced && outcome.sessionState === 'lost') {
      replaced = true;
      void pool.destroy(slot, 'failed', 'the backend reported the session lost after an execution');
    }
    pool.touch(slot);
    pool.recordExecution(slot, Date.now() - started);
    const result = toResult(id, outcome, replaced, timeoutMs);
    if (pool.listening('executionFinished')) {
      pool.emit('executionFinished', {
        ...base,
        at: Date.now(),
        status: result.status,
        durationMs: Date.now() - started,
        timedOut: outcome.timedOut === true,
      });
    }
    return result;
  }

  function requireFiles(slot: Slot) {
    const handle = requireLive(slot);
    if (!backend.capabilities.files || backend.files === undefined) {
      throw new UnsupportedError(`backend "${backend.name}" has no file system for sessions`);
    }
    pool.touch(slot);
    return { handle, files: backend.files };
  }

  function requireForwarding(slot: Slot) {
    const handle = requireLive(slot);
    if (!backend.capabilities.httpForwarding) {
      throw new UnsupportedError(`backend "${backend.name}" does not forward HTTP (custom-container sessions only)`);
    }
    pool.touch(slot);
    return handle;
  }

  return {
    execute(slot, options) {
      try {
        requireLive(slot);
      } catch (error) {
        return Promise.reject(error);
      }
      const limit = pool.options.limits.maxQueuedExecutions;
      // `executions` counts the running one too: the queue is what waits behind it.
      if (slot.executions > limit) {
        return Promise.reject(
          new SessionBusyError(`session has ${slot.executions - 1} executions queued (limit ${limit}); retry later`),
        );
      }
      executionCounter += 1;
      const id = `exec-${slot.id}-${executionCounter.toString(36)}`;
      const queuedAt = Date.now();
      slot.executions += 1;
      const run = slot.tail.then(() => runOne(slot, options, id, queuedAt));
      const settled = run.finally(() => {
        slot.executions -= 1;
        pool.executionsSettled(slot);
      });
      slot.tail = settled.catch(() => undefined);
      return settled;
    },

    async uploadFile(slot, path, data) {
      const target = normaliseDataPath(path);
      const { handle, files } = requireFiles(slot);
      return files.upload(handle, target, toByteChunks(data), { maxBytes: pool.options.limits.maxFileSizeBytes });
    },

    async listFiles(slot, options) {
      const dir = normaliseDataPath(options.path ?? '', { allowRoot: true });
      const { handle, files } = requireFiles(slot);
      return files.list(handle, { path: dir, recursive: options.recursive === true });
    },

    async fileInfo(slot, path) {
      const target = normaliseDataPath(path);
      const { handle, files } = requireFiles(slot);
      return files.stat(handle, target);
    },

    async downloadFile(slot, path) {
      const target = normaliseDataPath(path);
      const { handle, files } = requireFiles(slot);
      return files.download(handle, target, {});
    },

    async deleteFile(slot, path) {
      const target = normaliseDataPath(path);
      const { handle, files } = requireFiles(slot);
      await files.delete(handle, target);
    },

    async fetch(slot, request): Promise<Response> {
      const handle = requireForwarding(slot);
      if (backend.fetch === undefined) throw new UnsupportedError(`backend "${backend.name}" has no fetch()`);
      return backend.fetch(handle, request);
    },

    async connect(slot): Promise<Duplex> {
      const handle = requireForwarding(slot);
      if (backend.connect === undefined) throw new UnsupportedError(`backend "${backend.name}" has no connect()`);
      return backend.connect(handle);
    },

    async stop(slot) {
      await pool.destroy(slot, 'stopped');
    },

    async extend(slot, seconds) {
      if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_EXTEND_SECONDS) {
        throw new InvalidRequestError(`extend() takes a number of seconds in (0, ${MAX_EXTEND_SECONDS}]`);
      }
      requireLive(slot);
      const until = Date.now() + Math.ceil(seconds * 1000);
      slot.extendedUntil = Math.max(slot.extendedUntil ?? 0, until);
      // The armed timer fires no later than the old deadline and re-arms itself lazily, so the
      // extension needs no timer churn here.
      const at = pool.expiresAt(slot);
      return at === undefined ? undefined : new Date(at);
    },

    info(slot): SessionInfo {
      return {
        identifier: slot.identifier,
        sessionId: slot.id,
        state: slot.state,
        etag: slot.handle?.etag ?? slot.id,
        createdAt: new Date(slot.createdAt),
        allocatedAt: slot.allocatedAt === undefined ? undefined : new Date(slot.allocatedAt),
        lastAccessedAt: slot.lastAccessedAt === undefined ? undefined : new Date(slot.lastAccessedAt),
        expiresAt: ((at) => (at === undefined ? undefined : new Date(at)))(pool.expiresAt(slot)),
        executionsInFlight: slot.executions,
      };
    },
  };
}

export type { FileInfo };
