/**
 * Structured logs and audit records. One JSON object per line. Records never contain request
 * bodies, credentials or identifiers (identifiers are caller secrets; a session is named by its
 * pool-assigned session id instead).
 */

import type { SessionPool } from '../session-pool.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LogRecord {
  readonly level: LogLevel;
  readonly msg: string;
  readonly [key: string]: unknown;
}

/** Where records go. The default writes JSON lines to stderr. */
export type Logger = (record: LogRecord) => void;

export const jsonLinesLogger =
  (stream: NodeJS.WritableStream = process.stderr, minLevel: LogLevel = 'info'): Logger =>
  (record) => {
    const order: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
    if (order[record.level] < order[minLevel]) return;
    stream.write(`${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
  };

export const silentLogger: Logger = () => {};

/** The audit record written for every request. */
export interface AuditRecord {
  readonly requestId: string;
  readonly principal: string;
  readonly method: string;
  readonly operation: string;
  readonly pool: string | undefined;
  readonly status: number;
  readonly durationMs: number;
}

/** Log a pool's lifecycle events (no identifiers). Returns a function that stops logging. */
export function logPoolEvents(pool: SessionPool, log: Logger): () => void {
  const base = { pool: pool.name, backend: pool.backend.name };
  const handlers = {
    sessionReady: (e: { sessionId: string; createDurationMs: number }) =>
      log({ level: 'debug', msg: 'session ready', ...base, sessionId: e.sessionId, createDurationMs: e.createDurationMs }),
    sessionAllocated: (e: { sessionId: string; allocationLatencyMs: number; coldMiss: boolean }) =>
      log({
        level: 'info',
        msg: 'session allocated',
        ...base,
        sessionId: e.sessionId,
        allocationLatencyMs: e.allocationLatencyMs,
        coldMiss: e.coldMiss,
      }),
    sessionDestroyed: (e: { sessionId: string; reason: string; lifetimeMs: number }) =>
      log({
        level: 'info',
        msg: 'session destroyed',
        ...base,
        sessionId: e.sessionId,
        reason: e.reason,
        lifetimeMs: e.lifetimeMs,
      }),
    poolExhausted: (e: { maxConcurrentSessions: number }) =>
      log({ level: 'warn', msg: 'pool exhausted', ...base, maxConcurrentSessions: e.maxConcurrentSessions }),
    error: (e: { operation: string; error: { code: string; message: string }; retryInMs?: number | undefined }) =>
      log({
        level: 'error',
        msg: 'pool error',
        ...base,
        operation: e.operation,
        code: e.error.code,
        error: e.error.message,
        retryInMs: e.retryInMs,
      }),
  };
  for (const [event, fn] of Object.entries(handlers)) pool.on(event as 'error', fn as never);
  return () => {
    for (const [event, fn] of Object.entries(handlers)) pool.off(event as 'error', fn as never);
  };
}
