/**
 * Errors on the wire. Every failure leaves the server as Azure's error envelope
 * `{"error":{"code","message"}}` with the code repeated in `x-ms-error-code`, so clients written
 * against Azure parse our errors the way they parse the service's.
 */

import { ErrorCode, SandpoolError } from '../errors.js';

/** How one library error code is answered over HTTP. */
export interface HttpErrorMapping {
  readonly status: number;
  /** Azure's error code (the `error.code` string clients branch on). */
  readonly azureCode: string;
  /**
   * Seconds for `Retry-After`, for transient conditions whose end the error does not know; an
   * error's own `retryAfterMs` (a full pool's soonest free slot, a backend's next attempt) wins.
   */
  readonly retryAfterSeconds?: number;
}

/**
 * Library error code → HTTP status and Azure code. A Record over every ErrorCode, so adding a code
 * to src/errors.ts without deciding its status fails the typecheck here.
 */
export const ERROR_STATUS: Readonly<Record<ErrorCode, HttpErrorMapping>> = {
  [ErrorCode.INVALID_OPTIONS]: { status: 400, azureCode: 'InvalidRequestContent' },
  [ErrorCode.INVALID_IDENTIFIER]: { status: 400, azureCode: 'SessionRequestValidationFailed' },
  [ErrorCode.INVALID_REQUEST]: { status: 400, azureCode: 'SessionRequestValidationFailed' },
  [ErrorCode.POOL_CLOSED]: { status: 503, azureCode: 'SessionPoolUnavailable', retryAfterSeconds: 5 },
  // Azure's docs say 404 at maxConcurrentSessions, the live service was seen answering 429; 429 with
  // Retry-After is what every HTTP client's retry policy understands. Retry-After is when the
  // soonest slot frees (PoolExhaustedError.retryAfterMs); 60 only when no session of the pool has a
  // deadline (OnContainerExit without maxAlive), so nothing predicts one: ask again in a minute.
  [ErrorCode.POOL_EXHAUSTED]: { status: 429, azureCode: 'SessionPoolCapacityExceeded', retryAfterSeconds: 60 },
  [ErrorCode.ACQUIRE_TIMEOUT]: { status: 503, azureCode: 'SessionAllocationTimedOut', retryAfterSeconds: 2 },
  [ErrorCode.ABORTED]: { status: 499, azureCode: 'RequestAborted' },
  [ErrorCode.SESSION_NOT_FOUND]: { status: 400, azureCode: 'SessionWithIdentifierNotFound' },
  [ErrorCode.SESSION_BUSY]: { status: 429, azureCode: 'SessionBusy', retryAfterSeconds: 1 },
  [ErrorCode.BACKEND_UNAVAILABLE]: { status: 503, azureCode: 'SessionBackendUnavailable', retryAfterSeconds: 5 },
  [ErrorCode.BACKEND_FAILED]: { status: 502, azureCode: 'SessionBackendFailed' },
  [ErrorCode.EXECUTION_TIMEOUT]: { status: 504, azureCode: 'SessionExecutionTimedOut' },
  // The session cannot hold more (its /mnt/data is full, or what memory leaves is taken): 507, the
  // request was fine and may succeed once files are deleted.
  [ErrorCode.RESOURCE_LIMIT]: { status: 507, azureCode: 'SessionResourceLimitExceeded' },
  [ErrorCode.UNSUPPORTED]: { status: 400, azureCode: 'SessionRequestNotSupported' },
  [ErrorCode.FILE_NOT_FOUND]: { status: 404, azureCode: 'FileNotFound' },
  [ErrorCode.INVALID_PATH]: { status: 400, azureCode: 'SessionRequestValidationFailed' },
  [ErrorCode.FILE_TOO_LARGE]: { status: 413, azureCode: 'RequestEntityTooLarge' },
  // Cluster mode: the ownership store or the owning member is out of reach for now.
  [ErrorCode.CLUSTER_UNAVAILABLE]: { status: 503, azureCode: 'SessionClusterUnavailable', retryAfterSeconds: 2 },
};

/**
 * A failure that belongs to the HTTP layer itself (bad JSON, unknown route, missing credential).
 * Thrown inside handlers and turned into the envelope by the dispatcher.
 */
export class HttpError extends Error {
  readonly status: number;
  readonly azureCode: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Extra fields for the envelope (e.g. `details` naming every invalid property). */
  readonly extra: Readonly<Record<string, unknown>> | undefined;

  constructor(
    status: number,
    azureCode: string,
    message: string,
    options: { headers?: Record<string, string>; extra?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HttpError';
    this.status = status;
    this.azureCode = azureCode;
    this.headers = options.headers ?? {};
    this.extra = options.extra;
  }
}

/** The response an error turns into: status, headers and the Azure envelope. */
export interface ErrorResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: { error: { code: string; message: string; [key: string]: unknown } };
}

/**
 * Map anything thrown by a handler to a response. Unknown errors become a 500 with a generic message:
 * their text may carry paths or session data, so it goes to the log, never to the caller.
 */
export function toErrorResponse(error: unknown, requestId: string): ErrorResponse {
  if (error instanceof HttpError) {
    return {
      status: error.status,
      headers: { 'x-ms-error-code': error.azureCode, ...error.headers },
      body: { error: { code: error.azureCode, message: error.message, ...error.extra, traceId: requestId } },
    };
  }
  if (SandpoolError.is(error)) {
    const mapping = ERROR_STATUS[error.code];
    const headers: Record<string, string> = { 'x-ms-error-code': mapping.azureCode };
    const retryAfter = retryAfterSeconds(error);
    if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
    const details = safeDetails(error);
    return {
      status: mapping.status,
      headers,
      body: {
        error: {
          code: mapping.azureCode,
          message: error.message,
          innererror: { code: error.code },
          ...(details === undefined ? {} : { details }),
          traceId: requestId,
        },
      },
    };
  }
  return {
    status: 500,
    headers: { 'x-ms-error-code': 'InternalServerError' },
    body: { error: { code: 'InternalServerError', message: 'internal server error', traceId: requestId } },
  };
}

/**
 * `Retry-After` for a library error, in whole seconds (at least 1): the error's own `retryAfterMs`
 * when it knows when trying again may succeed, else its code's default, else none.
 */
export function retryAfterSeconds(error: SandpoolError): number | undefined {
  if (error.retryAfterMs !== undefined) return Math.max(1, Math.ceil(error.retryAfterMs / 1000));
  return ERROR_STATUS[error.code].retryAfterSeconds;
}

/** Only validation issues are echoed (they name the caller's own fields); other details stay in logs. */
function safeDetails(error: SandpoolError): unknown[] | undefined {
  const issues = error.details?.['issues'];
  if (!Array.isArray(issues)) return undefined;
  return issues.map((issue: { path?: unknown; message?: unknown }) => ({
    code: 'ValidationError',
    target: Array.isArray(issue.path) ? issue.path.join('.') : undefined,
    message: typeof issue.message === 'string' ? issue.message : String(issue.message),
  }));
}

export const badRequest = (message: string, code = 'SessionRequestValidationFailed'): HttpError =>
  new HttpError(400, code, message);
