/**
 * Errors on E2B's wires. The control plane and envd's HTTP routes answer `{"code": <status>,
 * "message"}` (E2B's `Error` schema, which the SDK reads as `res.error.message`); Connect RPCs
 * answer a Connect error (`{"code": "not_found", "message"}`), as a unary body or in the end-stream
 * message. The SDK turns the status or Connect code into its error classes, so the mapping below
 * decides which class an E2B user catches:
 *
 * | HTTP | Connect            | SDK class                                          |
 * | ---- | ------------------ | -------------------------------------------------- |
 * | 400  | invalid_argument   | InvalidArgumentError                               |
 * | 401  | unauthenticated    | AuthenticationError                                |
 * | 404  | not_found          | NotFoundError / FileNotFoundError / SandboxNotFound |
 * | 429  | resource_exhausted | RateLimitError                                     |
 * | 502  | unavailable        | TimeoutError ("sandbox timeout": the sandbox is gone) |
 * | 501  | unimplemented      | SandboxError (an unsupported feature)              |
 */

import type { z } from 'zod';

import { ErrorCode, SandpoolError } from '../../errors.js';
import { HttpError, retryAfterSeconds } from '../http-errors.js';

export type ConnectCode =
  | 'canceled'
  | 'unknown'
  | 'invalid_argument'
  | 'deadline_exceeded'
  | 'not_found'
  | 'already_exists'
  | 'permission_denied'
  | 'resource_exhausted'
  | 'failed_precondition'
  | 'unimplemented'
  | 'internal'
  | 'unavailable'
  | 'unauthenticated';

/** HTTP status Connect uses for each code (connectrpc.com/docs/protocol#error-codes). */
export const CONNECT_HTTP_STATUS: Readonly<Record<ConnectCode, number>> = {
  canceled: 499,
  unknown: 500,
  invalid_argument: 400,
  deadline_exceeded: 504,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  resource_exhausted: 429,
  failed_precondition: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  unauthenticated: 401,
};

/** A failure with both spellings: the HTTP status for REST routes and the Connect code for RPCs. */
export class E2bError extends Error {
  readonly status: number;
  readonly connectCode: ConnectCode;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, connectCode: ConnectCode, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'E2bError';
    this.status = status;
    this.connectCode = connectCode;
    this.headers = headers;
  }
}

export const badArgument = (message: string): E2bError => new E2bError(400, 'invalid_argument', message);
export const notFound = (message: string): E2bError => new E2bError(404, 'not_found', message);

/** Validate a request body or message; every problem is named in one InvalidArgumentError (400). */
export function parseOrRefuse<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw badArgument(result.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
}
/** A feature of E2B's API that sandpool does not offer. */
export const unsupported = (feature: string): E2bError =>
  new E2bError(501, 'unimplemented', `${feature} is not supported by sandpool's E2B API (see docs/E2B.md)`);
/** What E2B's proxy answers for a sandbox that does not exist (any more): the SDK reads it as "timed out". */
export const sandboxGone = (sandboxId: string): E2bError =>
  new E2bError(502, 'unavailable', `the sandbox ${sandboxId} was not found: it was killed or its timeout passed`);

interface Mapping {
  readonly status: number;
  readonly connect: ConnectCode;
}

/**
 * Library error code → E2B status and Connect code. A Record over every ErrorCode, so a new code
 * fails the typecheck here until it has an E2B answer.
 */
const E2B_ERROR: Readonly<Record<ErrorCode, Mapping>> = {
  [ErrorCode.INVALID_OPTIONS]: { status: 400, connect: 'invalid_argument' },
  [ErrorCode.INVALID_IDENTIFIER]: { status: 400, connect: 'invalid_argument' },
  [ErrorCode.INVALID_REQUEST]: { status: 400, connect: 'invalid_argument' },
  [ErrorCode.POOL_CLOSED]: { status: 503, connect: 'unavailable' },
  [ErrorCode.POOL_EXHAUSTED]: { status: 429, connect: 'resource_exhausted' },
  [ErrorCode.ACQUIRE_TIMEOUT]: { status: 503, connect: 'unavailable' },
  [ErrorCode.ABORTED]: { status: 499, connect: 'canceled' },
  // The session behind a sandbox is gone: E2B's proxy answers 502 for a sandbox that ended.
  [ErrorCode.SESSION_NOT_FOUND]: { status: 502, connect: 'unavailable' },
  [ErrorCode.SESSION_BUSY]: { status: 429, connect: 'resource_exhausted' },
  [ErrorCode.BACKEND_UNAVAILABLE]: { status: 503, connect: 'unavailable' },
  [ErrorCode.BACKEND_FAILED]: { status: 500, connect: 'internal' },
  [ErrorCode.EXECUTION_TIMEOUT]: { status: 504, connect: 'deadline_exceeded' },
  // envd answers 507 for a full disk; the SDK raises NotEnoughSpaceError.
  [ErrorCode.RESOURCE_LIMIT]: { status: 507, connect: 'resource_exhausted' },
  [ErrorCode.UNSUPPORTED]: { status: 501, connect: 'unimplemented' },
  [ErrorCode.FILE_NOT_FOUND]: { status: 404, connect: 'not_found' },
  [ErrorCode.INVALID_PATH]: { status: 400, connect: 'invalid_argument' },
  [ErrorCode.FILE_TOO_LARGE]: { status: 413, connect: 'resource_exhausted' },
  [ErrorCode.CLUSTER_UNAVAILABLE]: { status: 503, connect: 'unavailable' },
};

const CONNECT_OF_STATUS: Readonly<Record<number, ConnectCode>> = {
  400: 'invalid_argument',
  401: 'unauthenticated',
  403: 'permission_denied',
  404: 'not_found',
  408: 'deadline_exceeded',
  413: 'resource_exhausted',
  415: 'invalid_argument',
  429: 'resource_exhausted',
  503: 'unavailable',
};

/**
 * Any thrown value as an E2bError. Unknown errors become a generic 500: their text may carry paths
 * or session data, so it goes to the log (the caller of this function decides), never to the client.
 */
export function toE2bError(error: unknown): E2bError {
  if (error instanceof E2bError) return error;
  if (SandpoolError.is(error)) {
    const mapping = E2B_ERROR[error.code];
    // Transient conditions carry Retry-After, as on the Azure routes: the SDK retries a 429 with it.
    const retryAfter = retryAfterSeconds(error);
    return new E2bError(
      mapping.status,
      mapping.connect,
      error.message,
      retryAfter === undefined ? {} : { 'retry-after': String(retryAfter) },
    );
  }
  if (error instanceof HttpError) {
    // Shared body readers (JSON size caps, multipart parsing) speak HttpError.
    return new E2bError(error.status, CONNECT_OF_STATUS[error.status] ?? 'internal', error.message, error.headers);
  }
  return new E2bError(500, 'internal', 'internal server error');
}

/** Whether a failure is the caller's or the sandbox's (logged at info) rather than a server bug. */
export function isExpectedFailure(error: unknown): boolean {
  return error instanceof E2bError || error instanceof HttpError || SandpoolError.is(error);
}
