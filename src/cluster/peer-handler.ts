/**
 * The member-to-member routes under `/.cluster/v1/`: what a RemoteSession on another member calls
 * on the owner, plus listings and counts. Every request must be signed with the cluster secret;
 * every session call names the ownership epoch it was routed with and is refused unless this
 * member owns the identifier at that epoch and may still serve it. Bodies are validated (zod) and
 * streamed; errors leave as the wire envelope, never with a stack or a secret.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { ErrorCode, InvalidRequestError, SandpoolError } from '../errors.js';
import { UntrustedJsonError, parseUntrustedJsonText } from '../untrusted-json.js';
import type { SessionApi } from './session-api.js';
import {
  AUTH_HEADER,
  FILE_HEADER,
  PEER_PREFIX,
  SESSION_HEADER,
  TARGET_HEADER,
  WireExecuteSchema,
  executionToWire,
  toWireError,
  verifyRequest,
} from './peer-wire.js';
import type { ClusterMember } from './cluster-member.js';
import { readText } from './peer-client.js';

/** An extra member-to-member route (matched on the path after the prefix). */
export interface PeerRoute {
  readonly method: string;
  readonly path: RegExp;
  handle(match: RegExpExecArray, url: URL, req: IncomingMessage, res: ServerResponse): Promise<void>;
}

const MAX_EXECUTE_BODY = 20 * 1024 * 1024;

const STATUS: Partial<Record<string, number>> = {
  [ErrorCode.CLUSTER_UNAVAILABLE]: 503,
  [ErrorCode.BACKEND_UNAVAILABLE]: 503,
  [ErrorCode.POOL_CLOSED]: 503,
  [ErrorCode.BACKEND_FAILED]: 502,
  [ErrorCode.SESSION_NOT_FOUND]: 404,
  [ErrorCode.FILE_NOT_FOUND]: 404,
  [ErrorCode.SESSION_BUSY]: 429,
  [ErrorCode.POOL_EXHAUSTED]: 429,
  [ErrorCode.FILE_TOO_LARGE]: 413,
};

export function sendPeerError(res: ServerResponse, error: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const wire = toWireError(error);
  const status = SandpoolError.is(error) ? (STATUS[wire.code] ?? 400) : 500;
  sendJson(res, status, { error: wire });
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sessionHeader(session: SessionApi): Record<string, string> {
  return { [SESSION_HEADER]: encodeURIComponent(JSON.stringify(session.info())) };
}

export function createPeerHandler(member: ClusterMember, secret: string, extra: readonly PeerRoute[]) {
  return async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const aborter = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) aborter.abort();
    });
    try {
      const url = new URL(req.url ?? '/', 'http://member.invalid');
      const method = (req.method ?? 'GET').toUpperCase();
      const header = req.headers[AUTH_HEADER];
      const caller = verifyRequest(
        secret,
        typeof header === 'string' ? header : undefined,
        method,
        `${url.pathname}${url.search}`,
      );
      if (caller === undefined) {
        req.resume();
        sendJson(res, 401, {
          error: { code: 'Unauthorized', message: 'member requests must be signed with the cluster secret' },
        });
        return;
      }
      const rest = url.pathname.slice(PEER_PREFIX.length);
      if (method === 'GET' && rest === 'stats') return sendJson(res, 200, member.localStats());
      for (const route of extra) {
        const match = route.path.exec(rest);
        if (match !== null && route.method === method) return await route.handle(match, url, req, res);
      }
      const match = /^pools\/([^/]+)\/(sessions|session\/([a-z]+))$/.exec(rest);
      const pool = match === null ? undefined : member.get(decodeURIComponent(match[1]!));
      if (match === null || pool === undefined) {
        req.resume();
        sendJson(res, 404, { error: { code: 'NotFound', message: 'no such member route or pool' } });
        return;
      }
      if (match[2] === 'sessions' && method === 'GET') return sendJson(res, 200, pool.ownedSessions());
      const session = pool.forPeer(url.searchParams.get('identifier') ?? '', url.searchParams.get('epoch') ?? '');
      await sessionOperation(`${method} ${match[3] ?? ''}`, session, url, req, res, aborter.signal);
    } catch (error) {
      if (!req.readableEnded) req.resume();
      sendPeerError(res, error);
    }
  };
}

async function sessionOperation(
  operation: string,
  session: SessionApi,
  url: URL,
  req: IncomingMessage,
  res: ServerResponse,
  signal: AbortSignal,
): Promise<void> {
  const path = url.searchParams.get('path') ?? '';
  switch (operation) {
    case 'POST execute': {
      let body: unknown;
      try {
        body = parseUntrustedJsonText(await readText(req, MAX_EXECUTE_BODY));
      } catch (error) {
        if (error instanceof UntrustedJsonError) throw new InvalidRequestError(`the execute request ${error.message}`);
        if (SandpoolError.is(error) && error.code !== ErrorCode.CLUSTER_UNAVAILABLE) throw error;
        throw new InvalidRequestError('the execute request is not JSON (or too large)');
      }
      const parsed = WireExecuteSchema.safeParse(body);
      if (!parsed.success) throw new InvalidRequestError(`invalid execute request: ${parsed.error.issues[0]?.message ?? ''}`);
      const result = await session.execute({ ...parsed.data, signal });
      return sendJson(res, 200, executionToWire(result), sessionHeader(session));
    }
    case 'PUT files': {
      const info = await session.uploadFile(path, req as AsyncIterable<Uint8Array>);
      return sendJson(res, 200, info, sessionHeader(session));
    }
    case 'GET files': {
      const recursive = url.searchParams.get('recursive') === 'true';
      const files = await session.listFiles({ path: url.searchParams.has('path') ? path : undefined, recursive });
      return sendJson(res, 200, files, sessionHeader(session));
    }
    case 'GET file':
      return sendJson(res, 200, await session.fileInfo(path), sessionHeader(session));
    case 'DELETE file':
      await session.deleteFile(path);
      return sendJson(res, 200, {}, sessionHeader(session));
    case 'GET content': {
      const { info, body } = await session.downloadFile(path);
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        [FILE_HEADER]: encodeURIComponent(JSON.stringify(info)),
        ...sessionHeader(session),
      });
      await pipeline(Readable.from(body, { objectMode: false }), res);
      return;
    }
    case 'POST stop':
      await session.stop();
      return sendJson(res, 200, {});
    case 'GET info':
      return sendJson(res, 200, session.info(), sessionHeader(session));
    default:
      if (operation.endsWith(' fetch')) return forwardFetch(session, req, res, signal);
      throw new InvalidRequestError(`no member operation ${operation}`);
  }
}

/** A custom-container request relayed by another member: hand it to the session, stream the answer back. */
async function forwardFetch(session: SessionApi, req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
  const target = req.headers[TARGET_HEADER];
  if (typeof target !== 'string' || !target.startsWith('/'))
    throw new InvalidRequestError('a forwarded request needs its target path');
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name.startsWith('x-sandpool-') || name === 'host' || name === 'connection') continue;
    if (name === 'content-length' || name === 'transfer-encoding') continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  const method = (req.method ?? 'GET').toUpperCase();
  const init: RequestInit & { duplex?: 'half' } = { method, headers, signal };
  if (method !== 'GET' && method !== 'HEAD') {
    init.body = Readable.toWeb(req) as unknown as ReadableStream<Uint8Array>;
    init.duplex = 'half';
  }
  const response = await session.fetch(new Request(new URL(target, 'http://session.invalid'), init));
  const out: Record<string, string | string[]> = { ...sessionHeader(session) };
  response.headers.forEach((value, name) => {
    if (name === 'set-cookie' || name === 'transfer-encoding' || name === 'connection') return;
    // fetch has already decoded the body, so these no longer describe it.
    if (response.headers.has('content-encoding') && (name === 'content-encoding' || name === 'content-length')) return;
    out[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) out['set-cookie'] = cookies;
  res.writeHead(response.status, out);
  if (response.body === null) {
    res.end();
    return;
  }
  await pipeline(Readable.fromWeb(response.body as unknown as import('node:stream/web').ReadableStream), res);
}
