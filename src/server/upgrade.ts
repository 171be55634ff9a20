/**
 * Protocol upgrades (WebSocket) to CustomContainer sessions: authenticated and routed like any
 * forwarded request, then carried as raw bytes over `session.connect()`. The request head is
 * rewritten for the container without the caller's credential.
 */

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';

import { ErrorCode, SandpoolError } from '../errors.js';
import { assertIdentifier } from '../identifier.js';
import { requireRole, type Authenticator } from './auth.js';
import { HttpError, toErrorResponse } from './http-errors.js';
import { matchRoute } from './routes.js';
import { acquireOptions, type ServerState } from './server-state.js';

const NEVER_FORWARDED = new Set(['authorization', 'cookie', 'x-ms-apikey', 'api-key']);
const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/** The `upgrade` event listener for a node:http server. */
export function createUpgradeHandler(state: ServerState, auth: Authenticator) {
  const isCustom = (name: string): boolean => state.registry.get(name)?.pool.options.containerType === 'CustomContainer';

  return async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const started = performance.now();
    const requestId = randomUUID();
    let status = 101;
    let principal = '-';
    let pool: string | undefined;
    socket.on('error', () => socket.destroy());
    try {
      const url = new URL(`http://localhost${(req.url ?? '/').startsWith('/') ? req.url : '/'}`);
      const route = matchRoute(req.method ?? 'GET', url.pathname, isCustom);
      if (route === undefined || route.operation !== 'forward')
        throw new HttpError(404, 'NotFound', 'upgrades are forwarded to CustomContainer sessions only');
      pool = route.pool;
      const who = await auth.authenticate(req.headers.authorization);
      principal = who.name;
      requireRole(who, ['SessionExecutor']);
      const entry = state.registry.get(route.pool ?? '');
      if (entry === undefined) throw new HttpError(404, 'SessionPoolNotFound', 'no such session pool');
      const identifier = assertIdentifier(url.searchParams.get('identifier') ?? '');
      // Cluster mode: claimed like any request; a session owned by another member cannot be
      // reached by a raw stream from here, and says so (UNSUPPORTED) rather than being duplicated.
      const options = acquireOptions(state, req, undefined);
      const session =
        state.cluster === undefined
          ? await entry.pool.acquire(identifier, options)
          : await state.cluster.acquire(entry.pool, identifier, options);
      let upstream: Duplex;
      try {
        upstream = await session.connect();
      } catch (error) {
        if (SandpoolError.is(error) && error.code === ErrorCode.UNSUPPORTED) throw error;
        throw new HttpError(502, 'SessionContainerUnreachable', 'the session container did not answer');
      }
      const lines = [`${req.method ?? 'GET'} ${route.forwardPath ?? '/'}${url.search} HTTP/1.1`];
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
        const name = req.rawHeaders[i]!;
        if (!NEVER_FORWARDED.has(name.toLowerCase())) lines.push(`${name}: ${req.rawHeaders[i + 1]!}`);
      }
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
      const close = (): void => {
        socket.destroy();
        upstream.destroy();
      };
      upstream.on('error', close).on('close', close);
      socket.on('close', close);
      socket.pipe(upstream).pipe(socket);
    } catch (error) {
      const response = toErrorResponse(error, requestId);
      status = response.status;
      const body = JSON.stringify(response.body);
      const headers = {
        ...response.headers,
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        connection: 'close',
        'x-ms-request-id': requestId,
      };
      socket.end(
        `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n${Object.entries(headers)
          .map(([k, v]) => `${k}: ${v}`)
          .join('\r\n')}\r\n\r\n${body}`,
      );
    } finally {
      state.log({
        level: 'info',
        msg: 'audit',
        type: 'audit',
        requestId,
        principal,
        method: req.method ?? '',
        operation: 'forward.upgrade',
        pool,
        status,
        durationMs: Math.round((performance.now() - started) * 10) / 10,
      });
    }
  };
}
