/**
 * The wire between cluster members: paths, the HMAC that authenticates a member's request with the
 * shared cluster secret (the secret itself never travels), and how errors and results cross it.
 * Users' credentials never reach this wire: a member forwards what a session needs, nothing more.
 */

import { createHmac, timingSafeEqual } from 'node:crypto';

import { z } from 'zod';

import {
  AbortedError,
  BackendError,
  ClusterUnavailableError,
  ErrorCode,
  ExecutionTimeoutError,
  FileError,
  InvalidIdentifierError,
  InvalidRequestError,
  PoolClosedError,
  PoolExhaustedError,
  SandpoolError,
  SessionBusyError,
  SessionNotFoundError,
  UnsupportedError,
} from '../errors.js';
import type { ExecutionResult, SessionInfo } from '../session-types.js';

/** Every member-to-member route starts with this. */
export const PEER_PREFIX = '/.cluster/v1/';
export const AUTH_HEADER = 'x-sandpool-cluster';
/** The owner's snapshot of the session, on every session answer. */
export const SESSION_HEADER = 'x-sandpool-session';
/** File metadata on a download answer. */
export const FILE_HEADER = 'x-sandpool-file';
/** For a forwarded custom-container request: the path and query at the container. */
export const TARGET_HEADER = 'x-sandpool-target';
/** How far a signed request's clock may be from ours. */
const SKEW_MS = 60_000;

export const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/;
export const MIN_SECRET_LENGTH = 32;

function mac(secret: string, method: string, pathAndQuery: string, member: string, at: string): string {
  return createHmac('sha256', secret)
    .update(`v1\n${method.toUpperCase()}\n${pathAndQuery}\n${member}\n${at}`)
    .digest('base64url');
}

/** The header value authenticating one request of `member` (method and full path with query are signed). */
export function signRequest(secret: string, member: string, method: string, pathAndQuery: string, now = Date.now()): string {
  const at = String(now);
  return `v1 member=${member} at=${at} sig=${mac(secret, method, pathAndQuery, member, at)}`;
}

/** The calling member's node id, or undefined when the header is missing, stale or forged. */
export function verifyRequest(
  secret: string,
  header: string | undefined,
  method: string,
  pathAndQuery: string,
  now = Date.now(),
): string | undefined {
  if (header === undefined) return undefined;
  const match = /^v1 member=([A-Za-z0-9-]{1,63}) at=(\d{1,16}) sig=([A-Za-z0-9_-]{43})$/.exec(header);
  if (match === null) return undefined;
  const [, member, at, sig] = match as unknown as [string, string, string, string];
  if (Math.abs(now - Number(at)) > SKEW_MS) return undefined;
  const expected = Buffer.from(mac(secret, method, pathAndQuery, member, at));
  const given = Buffer.from(sig);
  return given.length === expected.length && timingSafeEqual(given, expected) ? member : undefined;
}

/** A failure as it crosses the wire: no stack, no cause, only what the caller may see anyway. */
export interface WireError {
  readonly code: string;
  readonly message: string;
  readonly details?: Record<string, unknown> | undefined;
  readonly retryAfterMs?: number | undefined;
}

export function toWireError(error: unknown): WireError {
  if (SandpoolError.is(error)) {
    const reason = error.details?.['reason'];
    return {
      code: error.code,
      message: error.message,
      ...(typeof reason === 'string' ? { details: { reason } } : {}),
      ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }),
    };
  }
  return { code: ErrorCode.BACKEND_FAILED, message: 'the owning member failed the request' };
}

/** Rebuild the typed error a member answered with, so a remote session rejects like a local one. */
export function fromWireError(wire: WireError): SandpoolError {
  const options = {
    ...(wire.details === undefined ? {} : { details: wire.details }),
    ...(wire.retryAfterMs === undefined ? {} : { retryAfterMs: wire.retryAfterMs }),
  };
  const m = wire.message;
  switch (wire.code) {
    case ErrorCode.INVALID_IDENTIFIER:
      return new InvalidIdentifierError(m, options);
    case ErrorCode.INVALID_REQUEST:
      return new InvalidRequestError(m, options);
    case ErrorCode.POOL_CLOSED:
      return new PoolClosedError(m, options);
    case ErrorCode.POOL_EXHAUSTED:
      return new PoolExhaustedError(m, options);
    case ErrorCode.ABORTED:
      return new AbortedError(m, options);
    case ErrorCode.SESSION_NOT_FOUND:
      return new SessionNotFoundError(m, options);
    case ErrorCode.SESSION_BUSY:
      return new SessionBusyError(m, options);
    case ErrorCode.BACKEND_UNAVAILABLE:
    case ErrorCode.BACKEND_FAILED:
      return new BackendError(m, { ...options, code: wire.code });
    case ErrorCode.EXECUTION_TIMEOUT:
      return new ExecutionTimeoutError(m, options);
    case ErrorCode.UNSUPPORTED:
      return new UnsupportedError(m, options);
    case ErrorCode.FILE_NOT_FOUND:
    case ErrorCode.INVALID_PATH:
    case ErrorCode.FILE_TOO_LARGE:
      return new FileError(wire.code, m, options);
    case ErrorCode.CLUSTER_UNAVAILABLE:
      return new ClusterUnavailableError(m, options);
    default:
      return Object.values(ErrorCode).includes(wire.code as ErrorCode)
        ? new SandpoolError(wire.code as ErrorCode, m, options)
        : new BackendError(`the owning member answered: ${m}`);
  }
}

const WireErrorSchema = z.object({
  code: z.string().max(64),
  message: z.string().max(4096),
  details: z.record(z.string(), z.unknown()).optional(),
  retryAfterMs: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31)
    .optional(),
});

export const WireErrorBodySchema = z.object({ error: WireErrorSchema });

/** What an execute request carries (ExecuteOptions without the signal). */
export const WireExecuteSchema = z.strictObject({
  code: z.string().max(16 * 1024 * 1024),
  language: z.enum(['python', 'javascript', 'shell']).optional(),
  timeoutInSeconds: z.number().positive().max(86_400).optional(),
  argv: z
    .array(z.string().max(1024 * 1024))
    .max(4096)
    .optional(),
  stdin: z
    .string()
    .max(16 * 1024 * 1024)
    .optional(),
  outputMaxBytes: z.number().int().positive().optional(),
  /** Checked in full by the owner's session (src/environment.ts). */
  env: z.record(z.string(), z.string()).optional(),
});

const DateSchema = z
  .string()
  .datetime()
  .transform((s) => new Date(s));

const FileInfoSchema = z.object({
  name: z.string(),
  path: z.string(),
  type: z.enum(['file', 'directory']),
  sizeInBytes: z.number(),
  lastModifiedAt: z.string(),
  contentType: z.string().optional(),
});

export const WireFileInfoSchema = FileInfoSchema;
export const WireFileListSchema = z.array(FileInfoSchema);

export const WireSessionInfoSchema = z.object({
  identifier: z.string().optional(),
  sessionId: z.string(),
  state: z.enum(['Pending', 'Ready', 'Allocated', 'Destroyed']),
  etag: z.string(),
  createdAt: DateSchema,
  allocatedAt: DateSchema.optional(),
  lastAccessedAt: DateSchema.optional(),
  expiresAt: DateSchema.optional(),
  executionsInFlight: z.number(),
});

export function parseSessionInfo(value: unknown): SessionInfo {
  const parsed = WireSessionInfoSchema.parse(value);
  return {
    ...parsed,
    identifier: parsed.identifier,
    allocatedAt: parsed.allocatedAt,
    lastAccessedAt: parsed.lastAccessedAt,
    expiresAt: parsed.expiresAt,
  };
}

const ImageSchema = z.object({ type: z.literal('image'), format: z.enum(['png', 'jpeg', 'svg']), base64_data: z.string() });

export const WireExecutionResultSchema = z.object({
  id: z.string(),
  status: z.enum(['Succeeded', 'Failed']),
  result: z.unknown(),
  stdout: z.string(),
  stderr: z.string(),
  executionTimeInMilliseconds: z.number(),
  exitCode: z.number().optional(),
  truncated: z.object({ stdout: z.boolean(), stderr: z.boolean() }),
  images: z.array(ImageSchema),
  sessionState: z.enum(['kept', 'restarted', 'replaced']),
  error: WireErrorSchema.optional(),
});

/** An ExecutionResult as JSON: its error travels as code and message. */
export function executionToWire(result: ExecutionResult): Record<string, unknown> {
  return { ...result, error: result.error === undefined ? undefined : toWireError(result.error) };
}

export function executionFromWire(value: unknown): ExecutionResult {
  const parsed = WireExecutionResultSchema.parse(value);
  const { error, ...rest } = parsed;
  return {
    ...rest,
    result: rest.result as ExecutionResult['result'],
    error: error === undefined ? undefined : fromWireError(error),
  };
}
