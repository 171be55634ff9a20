/**
 * Every failure sandpool reports is a `SandpoolError` with a stable `code`. Codes survive bundling
 * and dual ESM/CJS loading: the brand lives under a `Symbol.for` key, so `instanceof` works across
 * copies of the library.
 */

export const ErrorCode = {
  INVALID_OPTIONS: 'SANDPOOL_INVALID_OPTIONS',
  INVALID_IDENTIFIER: 'SANDPOOL_INVALID_IDENTIFIER',
  INVALID_REQUEST: 'SANDPOOL_INVALID_REQUEST',
  POOL_CLOSED: 'SANDPOOL_POOL_CLOSED',
  POOL_EXHAUSTED: 'SANDPOOL_POOL_EXHAUSTED',
  ACQUIRE_TIMEOUT: 'SANDPOOL_ACQUIRE_TIMEOUT',
  ABORTED: 'SANDPOOL_ABORTED',
  SESSION_NOT_FOUND: 'SANDPOOL_SESSION_NOT_FOUND',
  SESSION_BUSY: 'SANDPOOL_SESSION_BUSY',
  BACKEND_UNAVAILABLE: 'SANDPOOL_BACKEND_UNAVAILABLE',
  BACKEND_FAILED: 'SANDPOOL_BACKEND_FAILED',
  EXECUTION_TIMEOUT: 'SANDPOOL_EXECUTION_TIMEOUT',
  RESOURCE_LIMIT: 'SANDPOOL_RESOURCE_LIMIT',
  UNSUPPORTED: 'SANDPOOL_UNSUPPORTED',
  FILE_NOT_FOUND: 'SANDPOOL_FILE_NOT_FOUND',
  INVALID_PATH: 'SANDPOOL_INVALID_PATH',
  FILE_TOO_LARGE: 'SANDPOOL_FILE_TOO_LARGE',
  CLUSTER_UNAVAILABLE: 'SANDPOOL_CLUSTER_UNAVAILABLE',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const BRAND = Symbol.for('sandpool.error');

export interface SandpoolErrorOptions {
  cause?: unknown;
  /** Safe-to-show structured details (never secrets, never session data). */
  details?: Record<string, unknown>;
  /** When trying again may succeed, in milliseconds from now (a transient condition whose end is known). */
  retryAfterMs?: number | undefined;
}

/** Base class of every error sandpool throws. Branch on `code`, or `instanceof` a subclass. */
export class SandpoolError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  /**
   * When trying again may succeed, in milliseconds from now, where the condition's end is known:
   * a full pool's soonest free slot (`PoolExhaustedError`), a failing backend's next attempt.
   * The server turns it into `Retry-After`.
   */
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message: string, options: SandpoolErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details;
    this.retryAfterMs = options.retryAfterMs;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** True for any sandpool error, including one from another copy of the library. */
  static is(value: unknown): value is SandpoolError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this === SandpoolError) return SandpoolError.is(value);
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }

  /** Serialisable form for HTTP bodies and logs: no stack, no cause. */
  toJSON(): { name: string; code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details === undefined
      ? { name: this.name, code: this.code, message: this.message }
      : { name: this.name, code: this.code, message: this.message, details: this.details };
  }
}

/** A pool option or a backend option failed validation. `details.issues` names every problem. */
export class InvalidOptionsError extends SandpoolError {
  constructor(message: string, options?: SandpoolErrorOptions) {
    super(ErrorCode.INVALID_OPTIONS, message, options);
  }
}

/** An identifier breaks the rules: 4–128 characters of letters, digits and `|-&^%$#(){}[];<>`. */
export class InvalidIdentifierError extends SandpoolError {
  constructor(message: string, options?: SandpoolErrorOptions) {
    super(ErrorCode.INVALID_IDENTIFIER, message, options);
  }
}

/**
 * No session can be had now: every one the pool may hold (`maxConcurrentSessions`, or what the host
 * memory budget leaves) is live or claimed by an acquire queued ahead. `retryAfterMs` says when the
 * soonest slot frees (an allocated session's cooldown or maxAlive deadline); undefined when no
 * session of the pool has a deadline.
 */
export class PoolExhaustedError extends SandpoolError {
  constructor(message: string, options?: SandpoolErrorOptions) {
    super(ErrorCode.POOL_EXHAUSTED, message, options);
  }
}

/** The pool was closed before or while the operation ran. */
export class PoolClosedError extends SandpoolError {
  constructor(message = 'the session pool is closed', options?: SandpoolErrorOptions) {
    super(ErrorCode.POOL_CLOSED, message, options);
  }
}

/** No live session has this identifier (it never existed, or was destroyed). */
export class SessionNotFoundError extends SandpoolError {
  constructor(message: string, options?: SandpoolErrorOptions) {
    super(ErrorCode.SESSION_NOT_FOUND, message, options);
  }
}

/** The session's execution queue is full; retry later. */
export class SessionBusyError extends SandpoolError {
  constructor(message: string, options?: SandpoolErrorOptions) {
    super(ErrorCode.SESSION_BUSY, message, options);
  }
}

/** The backend could not create, reach or run a session. */
export class BackendError extends SandpoolError {
  constructor(
    message: string,
    options?: SandpoolErrorOptions & { code?: typeof ErrorCode.BACKEND_FAILED | typeof ErrorCode.BACKEND_UNAVAILABLE },
  ) {
    super(options?.code ?? ErrorCode.BACKEND_FAILED, message, options);
  }
}

/** An execution ran past its time limit and was interrupted. Found on `ExecutionResult.error`. */
export class ExecutionTimeoutError extends SandpoolError {
  constructor(message: string, options?: SandpoolErrorOptions) {
    super(ErrorCode.EXECUTION_TIMEOUT, message, options);
  }
}

/** The operation was aborted through its AbortSignal. */
export class AbortedError extends SandpoolError {
  constructor(message = 'the operation was aborted', options?: SandpoolErrorOptions) {
    super(ErrorCode.ABORTED, message, options);
  }
}

/** The backend does not offer this capability (files, HTTP forwarding, a language…). */
export class UnsupportedError extends SandpoolError {
  constructor(message: string, options?: SandpoolErrorOptions) {
    super(ErrorCode.UNSUPPORTED, message, options);
  }
}

/** A file operation failed: not found, a path outside `/mnt/data`, or over the size cap. */
export class FileError extends SandpoolError {
  constructor(
    code: typeof ErrorCode.FILE_NOT_FOUND | typeof ErrorCode.INVALID_PATH | typeof ErrorCode.FILE_TOO_LARGE,
    message: string,
    options?: SandpoolErrorOptions,
  ) {
    super(code, message, options);
  }
}

/** A request (execution, upload…) is malformed: missing code, wrong language for the pool, etc. */
export class InvalidRequestError extends SandpoolError {
  constructor(message: string, options?: SandpoolErrorOptions) {
    super(ErrorCode.INVALID_REQUEST, message, options);
  }
}

/**
 * Cluster mode cannot serve this identifier right now: the ownership store (etcd) is unreachable,
 * this member's lease is not held, or the owning member does not answer. Transient: retry later.
 * `details.reason` says which (`store`, `lease`, `owner`).
 */
export class ClusterUnavailableError extends SandpoolError {
  constructor(message: string, options?: SandpoolErrorOptions) {
    super(ErrorCode.CLUSTER_UNAVAILABLE, message, options);
  }
}

/** Wrap anything a backend threw into a SandpoolError, keeping sandpool errors as they are. */
export function toSandpoolError(error: unknown, context: string): SandpoolError {
  if (SandpoolError.is(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new BackendError(`${context}: ${message}`, { cause: error });
}
