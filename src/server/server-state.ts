/** What handlers share: the pools, the execution records, the logger and the server's settings. */

import type { IncomingMessage } from 'node:http';

import { assertIdentifier, isValidIdentifier } from '../identifier.js';
import type { Environment } from '../environment.js';
import type { SessionApi } from '../session.js';
import type { AcquireOptions, SessionPool } from '../session-pool.js';
import type { ServerCluster } from './cluster-mode.js';
import type { ExecutionStore } from './execution-store.js';
import { HttpError } from './http-errors.js';
import type { RequestContext } from './http-io.js';
import type { Logger } from './logging.js';
import type { ServerMetrics } from './metrics.js';
import type { PoolEntry, PoolRegistry } from './pool-registry.js';
import type { Readiness } from './readiness.js';

export interface ServerState {
  readonly registry: PoolRegistry;
  /** What `/readyz` reports: the registry's pools and the ones still being set up. */
  readonly readiness: Readiness;
  readonly executions: ExecutionStore;
  readonly metrics: ServerMetrics;
  readonly log: Logger;
  /** Largest JSON body accepted. */
  readonly maxJsonBytes: number;
  /** `auto`: stringify Gen 2 `executionResult` for Semantic Kernel .NET only. */
  readonly stringifyExecutionResult: 'auto' | 'always' | 'never';
  /** Background work (asynchronous executions) to settle before close. */
  readonly background: Set<Promise<unknown>>;
  /** Cluster mode (`--etcd`): sessions are acquired across the cluster. */
  readonly cluster?: ServerCluster | undefined;
  /** The longest a request waits for its session (`CreateServerOptions.maxAcquireWaitSeconds`). */
  readonly maxAcquireWaitMs: number;
}

/** The longest a request waits for its session unless the server is told otherwise. */
export const DEFAULT_MAX_ACQUIRE_WAIT_SECONDS = 60;

/**
 * The seconds a request's `Prefer: wait=N` (RFC 7240) asks for, if any. Other preferences in the
 * header are ignored; a malformed or zero wait is no request to wait.
 */
export function preferredWaitSeconds(prefer: string | string[] | undefined): number | undefined {
  const text = Array.isArray(prefer) ? prefer.join(',') : prefer;
  if (text === undefined || text.length > 1024) return undefined;
  const match = /(?:^|[,;])\s*wait\s*=\s*"?(\d{1,9})"?\s*(?=$|[,;])/i.exec(text);
  const seconds = match === null ? 0 : Number(match[1]);
  return seconds > 0 ? seconds : undefined;
}

/**
 * How a request acquires its session. A new identifier waits for a creation already on the way
 * (a cold start), never longer than `maxAcquireWaitMs` (then 503 SessionAllocationTimedOut); when
 * every slot is live or claimed it gets 429 with Retry-After at once, unless it sent
 * `Prefer: wait=N`: then it waits for a slot to free, up to N seconds (and the same bound).
 */
export function acquireOptions(state: ServerState, req: IncomingMessage, signal: AbortSignal | undefined): AcquireOptions {
  const asked = preferredWaitSeconds(req.headers.prefer);
  if (asked === undefined) return { signal, timeoutMs: state.maxAcquireWaitMs };
  return { signal, wait: true, timeoutMs: Math.min(asked * 1000, state.maxAcquireWaitMs) };
}

export function poolEntry(state: ServerState, ctx: RequestContext): PoolEntry {
  const name = ctx.route.pool;
  const entry = name === undefined ? undefined : state.registry.get(name);
  if (entry === undefined) {
    const failed = name === undefined ? undefined : state.registry.getFailed(name);
    if (failed !== undefined) {
      throw new HttpError(503, 'SessionPoolUnavailable', `session pool "${failed.name}" failed to load: ${failed.error}`, {
        headers: { 'retry-after': '30' },
      });
    }
    throw new HttpError(404, 'SessionPoolNotFound', `no session pool named "${name ?? ''}"`);
  }
  return entry;
}

/**
 * The identifier from the query string, or from the body for Gen 0 clients that send it there.
 * URLSearchParams has already percent-decoded it, which covers encoded and raw spellings alike.
 */
export function identifierOf(ctx: RequestContext, fromBody?: string): string {
  const value = ctx.url.searchParams.get('identifier') ?? fromBody;
  if (value === undefined || value === null || value === '') {
    throw new HttpError(400, 'SessionRequestValidationFailed', 'the identifier query parameter is required');
  }
  const valid: boolean = isValidIdentifier(value);
  if (!valid && value.includes('\uFFFD')) {
    // Clients that send the identifier raw (SK, AutoGen) may send a "%" that was never an escape
    // ("%b1" is not UTF-8): when decoding broke it, the undecoded spelling is what the caller meant.
    // A valid escape ("%20") was meant as one, and its result is judged as is.
    const raw = /(?:^|&)identifier=([^&]*)/.exec(ctx.url.search.slice(1))?.[1];
    if (raw !== undefined && isValidIdentifier(raw)) return raw;
  }
  return assertIdentifier(value);
}

/**
 * Get-or-create the session (Azure allocates on first use), within the bounds of `acquireOptions`;
 * honours client disconnects. In cluster mode the session may live on another member: the handle
 * forwards to it.
 */
export function acquire(
  state: ServerState,
  pool: SessionPool,
  identifier: string,
  ctx: RequestContext,
  env?: Environment | undefined,
): Promise<SessionApi> {
  const options: AcquireOptions = { ...acquireOptions(state, ctx.req, ctx.signal), env };
  if (state.cluster !== undefined) return state.cluster.acquire(pool, identifier, options);
  return pool.acquire(identifier, options);
}
