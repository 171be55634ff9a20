/**
 * `/mcp`: MCP's Streamable HTTP transport over the server's pools, behind the same authentication
 * as every other route (the dispatcher checks the bearer token and the SessionExecutor role first).
 *
 * Each MCP session (an `initialize` without `Mcp-Session-Id`) gets its own transport, McpServer and
 * sandbox identifier on one pool: `?pool=NAME`, else the only pool, else the pool named `python`.
 * A session is bound to the principal that opened it, closed by `DELETE /mcp`, by idling past
 * `idleMs`, or when the server closes; closing it releases its sandbox.
 */

import { randomUUID } from 'node:crypto';

import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';

import { SandpoolMcpSession } from '../mcp/mcp-session.js';
import { localSessions, type McpSessionSource } from '../mcp/tools.js';
import { UntrustedJsonError, parseUntrustedJsonText } from '../untrusted-json.js';
import type { SessionPool } from '../session-pool.js';
import { HttpError } from './http-errors.js';
import { sendJson, type RequestContext } from './http-io.js';
import { readBody } from './request-body.js';
import type { ServerState } from './server-state.js';

export interface McpEndpointOptions {
  /** Open MCP sessions at most; an `initialize` beyond answers 503. @default 256 */
  readonly maxSessions?: number | undefined;
  /** An MCP session with no request for this long is closed and its sandbox released. @default 30 min */
  readonly idleMs?: number | undefined;
}

interface Entry {
  readonly transport: StreamableHTTPServerTransport;
  readonly mcp: SandpoolMcpSession;
  readonly principal: string;
  lastSeen: number;
}

/** A JSON-RPC error answer without an id (MCP's transport-level failures). */
function rpcError(ctx: RequestContext, status: number, message: string): void {
  sendJson(ctx.res, status, { jsonrpc: '2.0', error: { code: status === 404 ? -32001 : -32000, message }, id: null });
}

export class McpEndpoint {
  readonly #sessions = new Map<string, Entry>();
  readonly #maxSessions: number;
  readonly #idleMs: number;
  readonly #sweep: NodeJS.Timeout;
  #closed = false;

  constructor(options: McpEndpointOptions = {}) {
    this.#maxSessions = options.maxSessions ?? 256;
    this.#idleMs = options.idleMs ?? 30 * 60_000;
    this.#sweep = setInterval(() => this.#closeIdle(), Math.min(60_000, Math.max(1000, this.#idleMs / 4)));
    this.#sweep.unref();
  }

  /** Open MCP sessions. */
  get size(): number {
    return this.#sessions.size;
  }

  async handle(state: ServerState, ctx: RequestContext): Promise<void> {
    if (this.#closed) throw new HttpError(503, 'SessionPoolUnavailable', 'the server is shutting down');
    checkOrigin(ctx);
    const method = ctx.req.method ?? 'GET';
    const body = method === 'POST' ? parseJson(await readBody(ctx.req, state.maxJsonBytes)) : undefined;
    const sessionId = ctx.req.headers['mcp-session-id'];
    if (typeof sessionId === 'string') {
      const entry = this.#sessions.get(sessionId);
      // Another principal's session id is as unknown as a made-up one.
      if (entry === undefined || entry.principal !== ctx.principal.name) return rpcError(ctx, 404, 'Session not found');
      entry.lastSeen = Date.now();
      await entry.transport.handleRequest(ctx.req, ctx.res, body);
      return;
    }
    if (method !== 'POST' || !isInitializeRequest(body)) {
      return rpcError(ctx, 400, 'Bad Request: send initialize first, then the Mcp-Session-Id it returns');
    }
    if (this.#sessions.size >= this.#maxSessions) {
      throw new HttpError(503, 'SessionPoolUnavailable', `too many open MCP sessions (${this.#maxSessions})`, {
        headers: { 'retry-after': '5' },
      });
    }
    const mcp = new SandpoolMcpSession(serverSessions(state, choosePool(state, ctx)));
    let entry: Entry | undefined;
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        entry = { transport, mcp, principal: ctx.principal.name, lastSeen: Date.now() };
        this.#sessions.set(id, entry);
      },
    });
    transport.onclose = () => {
      if (transport.sessionId !== undefined) this.#sessions.delete(transport.sessionId);
      void mcp.close();
    };
    await mcp.server.connect(transport);
    await transport.handleRequest(ctx.req, ctx.res, body);
    // An initialize that did not take (bad protocol version…) leaves nothing behind.
    if (entry === undefined) await mcp.close();
  }

  /** Close every MCP session (releasing their sandboxes). Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweep);
    const entries = [...this.#sessions.values()];
    this.#sessions.clear();
    await Promise.all(entries.map((e) => e.transport.close().then(() => e.mcp.close())));
  }

  #closeIdle(): void {
    const cutoff = Date.now() - this.#idleMs;
    for (const [id, entry] of this.#sessions) {
      if (entry.lastSeen >= cutoff) continue;
      this.#sessions.delete(id);
      void entry.transport.close().then(() => entry.mcp.close());
    }
  }
}

/** Sessions as the server's other routes get them: through the cluster when there is one. */
function serverSessions(state: ServerState, pool: SessionPool): McpSessionSource {
  const cluster = state.cluster;
  if (cluster === undefined) return localSessions(pool);
  return {
    pool,
    acquire: (identifier, options) => cluster.acquire(pool, identifier, options),
    async release(identifier) {
      const session = await cluster.get(pool, identifier);
      if (session === undefined) return false;
      await session.stop();
      return true;
    },
  };
}

function parseJson(raw: Buffer): unknown {
  if (raw.length === 0) return undefined;
  try {
    return parseUntrustedJsonText(raw.toString('utf8'));
  } catch (error) {
    const why = error instanceof UntrustedJsonError ? error.message : 'is not valid JSON';
    throw new HttpError(400, 'InvalidRequestContent', `the MCP request body ${why}`);
  }
}

/**
 * A browser page on another origin must not drive a local server's sandboxes (DNS rebinding, a
 * forgotten loopback server without credentials): a request whose Origin names another host is refused.
 */
function checkOrigin(ctx: RequestContext): void {
  const origin = ctx.req.headers.origin;
  if (origin === undefined) return;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    host = '';
  }
  if (host === '' || host !== ctx.req.headers.host) {
    throw new HttpError(403, 'AuthorizationFailed', 'cross-origin MCP requests are refused');
  }
}

function choosePool(state: ServerState, ctx: RequestContext): SessionPool {
  const named = ctx.url.searchParams.get('pool');
  const entries = state.registry.entries();
  const entry = named !== null ? state.registry.get(named) : entries.length === 1 ? entries[0] : state.registry.get('python');
  if (entry === undefined) {
    const names = entries.map((e) => e.pool.name).join(', ') || 'none';
    throw new HttpError(
      404,
      'SessionPoolNotFound',
      named !== null ? `no session pool named "${named}" (pools: ${names})` : `name a pool with /mcp?pool=NAME (pools: ${names})`,
    );
  }
  return entry.pool;
}
