/**
 * CustomContainer pools: any path the server does not reserve is forwarded to the session's
 * container (its `targetPort`) through `session.fetch`, as Azure does. The caller's credential is
 * the server's business, never the container's: Authorization and cookies are not passed on.
 */

import { Readable } from 'node:stream';

import { SandpoolError } from '../errors.js';
import { HOP_BY_HOP_HEADERS } from '../hop-by-hop.js';
import { HttpError } from './http-errors.js';
import { sendStream, type RequestContext } from './http-io.js';
import { acquire, identifierOf, poolEntry, type ServerState } from './server-state.js';

/** Not passed on either way: the hop-by-hop headers, and the two this server sets itself. */
const NOT_FORWARDED: ReadonlySet<string> = new Set([...HOP_BY_HOP_HEADERS, 'host', 'content-length']);
/** Credentials meant for this server. */
const NEVER_FORWARDED = new Set(['authorization', 'cookie', 'x-ms-apikey', 'api-key']);

export async function handleForward(state: ServerState, ctx: RequestContext): Promise<void> {
  const { pool } = poolEntry(state, ctx);
  const identifier = identifierOf(ctx);
  const session = await acquire(state, pool, identifier, ctx);

  const headers = new Headers();
  for (const [name, value] of Object.entries(ctx.req.headers)) {
    if (value === undefined || NOT_FORWARDED.has(name) || NEVER_FORWARDED.has(name)) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  headers.set('x-request-id', ctx.requestId);
  const method = (ctx.req.method ?? 'GET').toUpperCase();
  const hasBody = method !== 'GET' && method !== 'HEAD';
  const init: RequestInit & { duplex?: 'half' } = { method, headers, signal: ctx.signal };
  if (hasBody) {
    init.body = Readable.toWeb(ctx.req) as unknown as ReadableStream<Uint8Array>;
    init.duplex = 'half';
  }
  const target = new URL(`http://session.invalid${ctx.route.forwardPath ?? '/'}${ctx.url.search}`);

  let response: Response;
  try {
    response = await session.fetch(new Request(target, init));
  } catch (error) {
    if (SandpoolError.is(error) && error.code !== 'SANDPOOL_BACKEND_FAILED' && error.code !== 'SANDPOOL_BACKEND_UNAVAILABLE')
      throw error;
    state.log({
      level: 'warn',
      msg: 'forwarding to a session container failed',
      pool: pool.name,
      sessionId: session.id,
      error: (error as Error).message,
    });
    throw new HttpError(502, 'SessionContainerUnreachable', 'the session container did not answer');
  }

  // No prototype: a header named "__proto__" from the container is kept as a header, not dropped.
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  const decoded = response.headers.has('content-encoding');
  response.headers.forEach((value, name) => {
    // fetch has already decompressed the body, so the encoding headers no longer describe it.
    if (NOT_FORWARDED.has(name) || (decoded && (name === 'content-encoding' || name === 'content-length'))) return;
    if (name === 'set-cookie') return;
    out[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (response.body === null) {
    ctx.res.writeHead(response.status, cookies.length > 0 ? { ...out, 'set-cookie': cookies } : out);
    ctx.res.end();
    return;
  }
  if (cookies.length > 0) ctx.res.setHeader('set-cookie', cookies);
  const body = response.body as unknown as AsyncIterable<Uint8Array>;
  await sendStream(ctx.res, response.status, out, body);
}
