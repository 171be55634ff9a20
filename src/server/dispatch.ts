/**
 * One request, start to end: request id, route, authentication, role check, handler, error
 * envelope, audit record and metrics. Handlers stay free of cross-cutting concerns.
 */

import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';

import { requireRole, type Authenticator, type Role } from './auth.js';
import type { E2bApi } from './e2b/index.js';
import { handleExecute, handleGetExecution } from './execute-handlers.js';
import { handleExecuteStream } from './execute-stream.js';
import { handleDelete, handleDownload, handleFileInfo, handleList, handleUpload } from './file-handlers.js';
import { handleForward } from './forwarding.js';
import { HttpError, toErrorResponse } from './http-errors.js';
import { sendJson, type RequestContext } from './http-io.js';
import type { McpEndpoint } from './mcp-endpoint.js';
import { handleDeletePool, handleGetPool, handleListPools, handlePatchPool, handlePutPool } from './pool-handlers.js';
import { matchRoute, type Operation } from './routes.js';
import type { ServerState } from './server-state.js';
import { handleGetSession, handleListSessions, handleMetadata, handleStopSession } from './session-handlers.js';
import * as pause from './pause-handlers.js';

export interface DispatchOptions {
  readonly auth: Authenticator;
  /** Fixed `scheme://host:port` for links; else derived from the Host header. */
  readonly publicUrl: string | undefined;
  readonly tls: boolean;
  /** Serve /metrics without credentials (for a Prometheus scraper on a private network). */
  readonly publicMetrics: boolean;
  readonly startedAt: Date;
  /** The status page, when enabled. */
  readonly ui: ((ctx: RequestContext) => Promise<void> | void) | undefined;
  /** The E2B-compatible API under /e2b, when enabled. It authenticates and answers errors itself. */
  readonly e2b?: E2bApi | undefined;
  /** The MCP endpoint, made on first use (it loads the MCP SDK). */
  readonly mcp: () => Promise<McpEndpoint>;
  /** While the stored pool definitions are still loading: settles once they are. */
  readonly loading?: (() => Promise<void> | undefined) | undefined;
}

/** Probes answer at once, loaded or not: they say how far start-up is. */
const PROBES = new Set(['/healthz', '/readyz', '/metrics']);
/** The longest a request made during start-up waits for the pool definitions (or maxAcquireWait). */
const LOADING_WAIT_MS = 10_000;

/** Wait for the definitions, at most `waitMs` (or until the client leaves); 503 with Retry-After past that. */
async function untilLoaded(loading: Promise<void>, signal: AbortSignal, waitMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), waitMs);
    onAbort = () => resolve(true);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    if (!(await Promise.race([loading.then(() => false), late]))) return;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort!);
  }
  throw new HttpError(503, 'SessionPoolUnavailable', 'the server is still loading its pool definitions', {
    headers: { 'retry-after': '2' },
  });
}

const READ: readonly Role[] = ['Reader', 'Contributor'];
const WRITE: readonly Role[] = ['Contributor'];
const EXECUTE: readonly Role[] = ['SessionExecutor'];

function rolesFor(operation: Operation): readonly Role[] {
  if (operation === 'pool.list' || operation === 'pool.get' || operation === 'metrics' || operation === 'ui') return READ;
  if (operation.startsWith('pool.')) return WRITE;
  return EXECUTE;
}

const HOST = /^[A-Za-z0-9.\-[\]:]{1,300}$/;

function requestUrl(req: IncomingMessage): URL {
  const raw = req.url ?? '/';
  try {
    // Prefix rather than resolve, so a path starting with `//` stays a path and is not read as a host.
    return raw.startsWith('/') ? new URL(`http://localhost${raw}`) : new URL(raw);
  } catch {
    throw new HttpError(400, 'SessionRequestValidationFailed', 'the request URL is malformed');
  }
}

export function createDispatcher(state: ServerState, options: DispatchOptions) {
  const isCustom = (name: string): boolean => state.registry.get(name)?.pool.options.containerType === 'CustomContainer';

  async function route(ctx: RequestContext): Promise<void> {
    const op = ctx.route.operation;
    switch (op) {
      case 'healthz':
        return sendJson(ctx.res, 200, { status: 'ok', pools: state.registry.entries().length });
      case 'readyz': {
        // Open like /healthz (for load balancers and orchestrators): pool names and states only.
        // A cluster member is ready only while it holds its lease (it can claim and serve).
        const report = state.readiness.report();
        const lease = state.cluster?.member.leaseState;
        const ready = report.ready && (lease === undefined || lease === 'serving');
        return sendJson(
          ctx.res,
          ready ? 200 : 503,
          { status: ready ? 'ready' : 'starting', pools: report.pools, ...(lease === undefined ? {} : { lease }) },
          ready ? {} : { 'retry-after': '5' },
        );
      }
      case 'metrics': {
        const { contentType, body } = await state.metrics.render();
        ctx.res.writeHead(200, { 'content-type': contentType });
        ctx.res.end(body);
        return;
      }
      case 'ui':
        if (options.ui === undefined) throw new HttpError(404, 'NotFound', 'the status page is disabled');
        return options.ui(ctx);
      case 'pool.list':
        return handleListPools(state, ctx);
      case 'pool.get':
        return handleGetPool(state, ctx);
      case 'pool.put':
        return handlePutPool(state, ctx);
      case 'pool.patch':
        return handlePatchPool(state, ctx);
      case 'pool.delete':
        return handleDeletePool(state, ctx);
      case 'gen0.execute':
        return handleExecute(state, ctx, 0);
      case 'gen1.execute':
        return handleExecute(state, ctx, 1);
      case 'gen2.execute':
        return handleExecute(state, ctx, 2);
      case 'gen1.executeStream':
        return handleExecuteStream(state, ctx);
      case 'mcp':
        return (await options.mcp()).handle(state, ctx);
      case 'gen2.getExecution':
        return handleGetExecution(state, ctx);
      case 'gen0.upload':
        return handleUpload(state, ctx, 0);
      case 'gen1.upload':
        return handleUpload(state, ctx, 1);
      case 'gen2.upload':
        return handleUpload(state, ctx, 2);
      case 'gen0.listFiles':
        return handleList(state, ctx, 0);
      case 'files.list':
        return handleList(state, ctx, 2);
      case 'files.get':
        return handleFileInfo(state, ctx);
      case 'gen0.download':
        return handleDownload(state, ctx, 0);
      case 'gen1.download':
        return handleDownload(state, ctx, 1);
      case 'gen2.download':
        return handleDownload(state, ctx, 2);
      case 'files.delete':
        return handleDelete(state, ctx);
      case 'session.get':
      case 'management.getSession':
        return handleGetSession(state, ctx);
      case 'session.delete':
        return handleStopSession(state, ctx, 'delete');
      case 'management.stopSession':
        return handleStopSession(state, ctx, 'management');
      case 'sessions.list':
      case 'management.listSessions':
        return handleListSessions(state, ctx);
      case 'metadata':
        return handleMetadata(state, ctx, options.startedAt);
      case 'session.pause':
        return pause.handlePause(state, ctx);
      case 'session.resume':
        return pause.handleResume(state, ctx);
      case 'session.extend':
        return pause.handleExtend(state, ctx);
      case 'session.fork':
        return pause.handleFork(state, ctx);
      case 'session.snapshot':
        return pause.handleSnapshot(state, ctx);
      case 'session.fromSnapshot':
        return pause.handleFromSnapshot(state, ctx);
      case 'snapshots.list':
        return pause.handleListSnapshots(state, ctx);
      case 'snapshots.delete':
        return pause.handleDeleteSnapshot(state, ctx);
      case 'forward':
        return handleForward(state, ctx);
    }
  }

  return async function dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const requestId = randomUUID();
    res.setHeader('x-ms-request-id', requestId);
    res.setHeader('x-request-id', requestId);
    const clientId = req.headers['x-ms-client-request-id'];
    if (typeof clientId === 'string' && /^[\x21-\x7e]{1,128}$/.test(clientId)) res.setHeader('x-ms-client-request-id', clientId);

    const aborter = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) aborter.abort();
    });
    let operation: string = 'unmatched';
    let pool: string | undefined;
    let principal = '-';
    res.on('close', () => {
      const durationMs = performance.now() - started;
      state.metrics.observeRequest(operation, res.statusCode, durationMs / 1000);
      state.log({
        level: 'info',
        msg: 'audit',
        type: 'audit',
        requestId,
        principal,
        method: req.method ?? '',
        operation,
        pool,
        status: res.writableFinished ? res.statusCode : 499,
        durationMs: Math.round(durationMs * 10) / 10,
      });
    });

    try {
      const url = requestUrl(req);
      const loading = options.loading?.();
      if (loading !== undefined && !PROBES.has(url.pathname.toLowerCase()))
        await untilLoaded(loading, aborter.signal, Math.min(LOADING_WAIT_MS, state.maxAcquireWaitMs));
      if (options.e2b?.owns(url.pathname) === true) {
        operation = 'e2b.unmatched';
        await options.e2b.handle({
          req,
          res,
          url,
          requestId,
          signal: aborter.signal,
          audit: (fields) => {
            operation = fields.operation ?? operation;
            pool = fields.pool ?? pool;
            principal = fields.principal ?? principal;
          },
        });
        return;
      }
      const found = matchRoute(req.method ?? 'GET', url.pathname, isCustom);
      if (found === undefined)
        throw new HttpError(
          404,
          'NotFound',
          `no operation ${req.method ?? ''} ${url.pathname.replace(/[^\x20-\x7e]/g, '?').slice(0, 200)}`,
        );
      operation = found.operation;
      pool = found.pool;
      const host = req.headers.host;
      // Mounted under a prefix (express strips it from req.url and keeps originalUrl): links include it.
      const original = (req as { originalUrl?: unknown }).originalUrl;
      const rawUrl = req.url ?? '/';
      const mount =
        typeof original === 'string' && original !== rawUrl && original.endsWith(rawUrl)
          ? original.slice(0, original.length - rawUrl.length)
          : '';
      const origin = `${options.tls ? 'https' : 'http'}://${host !== undefined && HOST.test(host) ? host : 'localhost'}`;
      const baseUrl = options.publicUrl ?? `${origin}${mount.replace(/\/+$/, '')}`;
      let who = { kind: 'anonymous', name: 'public', roles: new Set<Role>() } as Awaited<
        ReturnType<Authenticator['authenticate']>
      >;
      // The status page itself holds no data (it fetches everything with the operator's token).
      const uiShell = operation === 'ui' && !(found.param ?? '').startsWith('api/');
      const open =
        operation === 'healthz' || operation === 'readyz' || uiShell || (operation === 'metrics' && options.publicMetrics);
      if (!open) {
        who = await options.auth.authenticate(req.headers.authorization);
        principal = who.name;
        requireRole(who, rolesFor(found.operation));
      }
      await route({ req, res, url, route: found, requestId, principal: who, baseUrl, signal: aborter.signal });
    } catch (error) {
      if (!(error instanceof HttpError) && !isExpected(error)) {
        state.log({
          level: 'error',
          msg: 'request failed',
          requestId,
          operation,
          pool,
          error: (error as Error)?.message ?? String(error),
        });
      }
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const { status, headers, body } = toErrorResponse(error, requestId);
      // A body we did not read (an early 413) is drained rather than left to stall the connection.
      if (!req.readableEnded) req.resume();
      sendJson(res, status, body, headers);
    }
  };
}

function isExpected(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as { code?: unknown }).code === 'string' &&
    String((error as { code: string }).code).startsWith('SANDPOOL_')
  );
}
