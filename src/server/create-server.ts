/**
 * `createServer`: an Azure dynamic-sessions compatible HTTP server over SessionPools. It is a
 * `node:http` request listener first (mount it in express, fastify or a bare server) and can also
 * listen on its own, with TLS from certificate files and graceful close.
 */

import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';

import type { ClusterMember } from '../cluster/cluster-member.js';
import { InvalidOptionsError } from '../errors.js';
import type { ContainerType } from '../options.js';
import type { SessionPool } from '../session-pool.js';
import { Authenticator, authConfigured, type AuthOptions } from './auth.js';
import { ServerCluster } from './cluster-mode.js';
import { createDispatcher } from './dispatch.js';
import { createE2bApi, type E2bOptions } from './e2b/index.js';
import type { McpEndpoint, McpEndpointOptions } from './mcp-endpoint.js';
import { ExecutionStore } from './execution-store.js';
import { jsonLinesLogger, logPoolEvents, type Logger } from './logging.js';
import { ServerMetrics } from './metrics.js';
import { PoolRegistry, type BackendFactory } from './pool-registry.js';
import { Readiness, type AnnouncedPool, type ReadinessReport } from './readiness.js';
import { DEFAULT_MAX_ACQUIRE_WAIT_SECONDS, type ServerState } from './server-state.js';
import { createStatusPage } from './status-page.js';
import { createUpgradeHandler } from './upgrade.js';

export interface CreateServerOptions {
  /** Pools made in code. They are served as they are and are not persisted. */
  readonly pools?: readonly SessionPool[] | Readonly<Record<string, SessionPool>> | undefined;
  /** Backends `PUT /pools/NAME` may use, by name (`{ quickjs: () => new QuickJSBackend() }`). */
  readonly backends?: Readonly<Record<string, BackendFactory>> | undefined;
  /** Backend for a pool definition without `backend`. @default the first backend in `backends` */
  readonly defaultBackend?: ((containerType: ContainerType) => string | undefined) | undefined;
  /** Where pool definitions persist (`<dataDir>/pools/NAME.json`). Without it nothing persists. */
  readonly dataDir?: string | undefined;
  readonly auth?: AuthOptions | undefined;
  /** @default JSON lines on stderr */
  readonly logger?: Logger | undefined;
  /** Largest JSON request body. @default 16 MiB */
  readonly maxJsonBytes?: number | undefined;
  /** Largest request header section (Node answers 431 beyond). @default 16 KiB */
  readonly maxHeaderSize?: number | undefined;
  /** A client that has not sent its whole header section by then is disconnected (slowloris). @default 30 000 */
  readonly headersTimeoutMs?: number | undefined;
  /**
   * A request body that stalls (no bytes) this long is answered 408 and its connection closed.
   * Only idle time counts: a slow but steady upload is fine. @default headersTimeoutMs
   */
  readonly bodyIdleTimeoutMs?: number | undefined;
  /** Gen 2 `executionResult` as a string: `auto` does it for Semantic Kernel .NET only. @default 'auto' */
  readonly stringifyExecutionResult?: 'auto' | 'always' | 'never' | undefined;
  /** Base URL reported in `poolManagementEndpoint` and `Operation-Location`. @default from the Host header */
  readonly publicUrl?: string | undefined;
  /** Serve /metrics without credentials. @default false */
  readonly publicMetrics?: boolean | undefined;
  /** Serve the status page at /ui/. @default true */
  readonly ui?: boolean | undefined;
  /** PEM certificate and key files; the server then listens with HTTPS. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string } | undefined;
  /**
   * Cluster mode: serve every pool across the cluster this member belongs to (pool definitions
   * in its store, not the data dir). The server starts the member and closes it on close().
   */
  readonly cluster?: ClusterMember | undefined;
  /**
   * The longest a request waits for its session: a new identifier's creation (a cold start), or,
   * when it sent `Prefer: wait=N`, a slot to free at maxConcurrentSessions (up to N). Past it the
   * request is answered 503 `SessionAllocationTimedOut` with Retry-After. Without `Prefer: wait`,
   * a request that finds every slot live or claimed is answered 429 at once. @default 60
   */
  readonly maxAcquireWaitSeconds?: number | undefined;
  /** The E2B-compatible API under /e2b (docs/E2B.md); `false` turns it off. @default {} */
  readonly e2b?: E2bOptions | false | undefined;
  /** MCP's Streamable HTTP transport at `/mcp` (see docs/SERVER.md). */
  readonly mcp?: McpEndpointOptions | undefined;
}

export interface ListenOptions {
  /** @default '127.0.0.1' */
  readonly host?: string | undefined;
  /** 0 picks a free port. @default 8080 */
  readonly port?: number | undefined;
}

/** The running server. `handler` is a plain `(req, res)` listener for any Node HTTP stack. */
export interface SandpoolServer extends AsyncDisposable {
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** `upgrade` listener (WebSocket to CustomContainer sessions); `listen()` installs it. */
  readonly upgradeHandler: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** Resolves when persisted pools are loaded. */
  readonly ready: Promise<void>;
  readonly registry: PoolRegistry;
  readonly metrics: ServerMetrics;
  pools(): SessionPool[];
  /**
   * Announce a pool that is still being set up (its backend probed), so `/readyz` answers 503 until
   * it is added and ready. `add(pool)` serves it; `unavailable()` says it will not come.
   */
  announcePool(name: string): AnnouncedPool;
  /** What `/readyz` answers: ready when every pool (announced or served) has filled its ready set. */
  readiness(): ReadinessReport;
  /** Listen on HOST:PORT. Refuses a non-loopback address when no credential kind is configured. */
  listen(options?: ListenOptions): Promise<{ host: string; port: number; url: string }>;
  /** The underlying node server, once listening. */
  readonly httpServer: Server | undefined;
  /** Stop accepting, finish in-flight requests, close every pool. Idempotent. */
  close(): Promise<void>;
}

/** How long close() lets running requests finish before it cuts their connections. */
const DRAIN_GRACE_MS = 15_000;

function maxAcquireWaitSeconds(value: number | undefined): number {
  if (value === undefined) return DEFAULT_MAX_ACQUIRE_WAIT_SECONDS;
  if (!Number.isFinite(value) || value <= 0 || value > 3600) {
    throw new InvalidOptionsError(`maxAcquireWaitSeconds must be a number of seconds above 0, at most 3600 (got ${value})`);
  }
  return value;
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::ffff:127.0.0.1';
}

/**
 * Create the server.
 * @example
 * const server = createServer({ pools: [pool], auth: { adminKey: process.env.SANDPOOL_ADMIN_KEY } });
 * const { url } = await server.listen({ port: 8080 });
 */
export function createServer(options: CreateServerOptions = {}): SandpoolServer {
  const maxAcquireWaitMs = maxAcquireWaitSeconds(options.maxAcquireWaitSeconds) * 1000;
  const log = options.logger ?? jsonLinesLogger();
  const auth = new Authenticator(options.auth ?? {});
  const detachLogs = new Map<SessionPool, () => void>();
  let metrics: ServerMetrics | undefined;
  const backends = options.backends ?? {};
  const cluster = options.cluster === undefined ? undefined : new ServerCluster(options.cluster);
  const registry = new PoolRegistry({
    backends,
    defaultBackend: options.defaultBackend ?? (() => Object.keys(backends)[0]),
    dataDir: options.dataDir,
    definitions: cluster?.definitions,
    log,
    onAdd: (pool) => {
      cluster?.poolAdded(pool);
      metrics?.attach(pool);
      detachLogs.set(pool, logPoolEvents(pool, log));
    },
    onRemove: (pool) => {
      cluster?.poolRemoved(pool);
      metrics?.detach(pool);
      detachLogs.get(pool)?.();
      detachLogs.delete(pool);
    },
  });
  metrics = new ServerMetrics(() => registry.pools());
  const given = options.pools === undefined ? [] : Array.isArray(options.pools) ? options.pools : Object.values(options.pools);
  for (const pool of given as SessionPool[]) registry.addStatic(pool);

  const state: ServerState = {
    registry,
    readiness: new Readiness(registry),
    executions: new ExecutionStore(),
    metrics,
    log,
    maxJsonBytes: options.maxJsonBytes ?? 16 * 1024 * 1024,
    stringifyExecutionResult: options.stringifyExecutionResult ?? 'auto',
    background: new Set(),
    cluster,
    maxAcquireWaitMs,
  };
  for (const route of cluster?.peerRoutes() ?? []) options.cluster!.addPeerRoute(route);
  const e2b = options.e2b === false ? undefined : createE2bApi(state, auth, options.e2b);
  let mcpEndpoint: Promise<McpEndpoint> | undefined;
  const mcp = (): Promise<McpEndpoint> =>
    (mcpEndpoint ??= import('./mcp-endpoint.js').then((m) => new m.McpEndpoint(options.mcp)));
  const dispatch = createDispatcher(state, {
    mcp,
    auth,
    publicUrl: options.publicUrl?.replace(/\/+$/, ''),
    tls: options.tls !== undefined,
    publicMetrics: options.publicMetrics ?? false,
    startedAt: new Date(),
    ui: options.ui === false ? undefined : createStatusPage(() => metrics!, cluster?.memberCounts),
    e2b,
    loading: () => loading,
  });
  const bodyIdleMs = options.bodyIdleTimeoutMs ?? options.headersTimeoutMs ?? 30_000;
  // Dispatch and upgrade answer every failure themselves; a rejection reaching here is a bug, logged
  // rather than left to end the process as an unhandled rejection.
  const unexpected = (what: string) => (error: unknown) =>
    log({ level: 'error', msg: `${what} failed unexpectedly`, error: (error as Error)?.message ?? String(error) });
  // Answers not yet begun, so a drain can tell their clients not to reuse the connection.
  const unanswered = new Set<ServerResponse>();
  let draining = false;
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    guardStalledBody(req, res, bodyIdleMs);
    if (draining) res.setHeader('connection', 'close');
    else {
      unanswered.add(res);
      res.once('close', () => unanswered.delete(res));
    }
    if (cluster !== undefined) {
      // Which member answered: for operators behind a load balancer, and for the cluster tests.
      res.setHeader('x-sandpool-member', cluster.member.nodeId);
      if (cluster.handlePeer(req, res)) return;
    }
    dispatch(req, res).catch(unexpected('request'));
  };
  const upgrade = createUpgradeHandler(state, auth);
  const upgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    upgrade(req, socket, head).catch(unexpected('upgrade'));
  };
  const ready = Promise.all([registry.loadPersisted(), cluster?.attach(registry, state.executions, metrics, log)]).then(
    () => undefined,
  );
  // Until the stored definitions are loaded (the server listens before), requests wait for them
  // rather than be told a pool that exists does not.
  let loading: Promise<void> | undefined = ready.then(
    () => {
      loading = undefined;
    },
    () => {
      loading = undefined;
    },
  );

  let httpServer: Server | undefined;
  let closing: Promise<void> | undefined;

  async function shutdown(): Promise<void> {
    // Node goes on serving requests that arrive on a kept-alive connection after close(): a client
    // that keeps one busy (a load balancer, a member forwarding to this one) would hold the drain,
    // and in a cluster this member's lease and identifiers, until the grace period below. So every
    // answer from now on ends its connection.
    draining = true;
    for (const res of unanswered) if (!res.headersSent) res.setHeader('connection', 'close');
    unanswered.clear();
    // MCP sessions first: their open event streams would hold the HTTP server's close, and closing
    // them releases their sandboxes while the pools still run.
    if (mcpEndpoint !== undefined) await (await mcpEndpoint.catch(() => undefined))?.close();
    const server = httpServer;
    if (server !== undefined) {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Requests still running get the pools' grace period; then their sockets are cut.
      const cut = await Promise.race([
        stopped.then(() => false),
        new Promise<boolean>((r) => setTimeout(() => r(true), DRAIN_GRACE_MS).unref()),
      ]);
      if (cut) log({ level: 'warn', msg: `drain: requests still running after ${DRAIN_GRACE_MS} ms were cut off` });
      server.closeAllConnections();
    }
    cluster?.abandon();
    await ready.catch(() => {});
    e2b?.close();
    while (state.background.size > 0) await Promise.allSettled([...state.background]);
    await registry.closeAll();
    // After the pools: their sessions have ended, so revoking the lease frees nothing still in use.
    await cluster?.close();
    metrics!.close();
  }

  return {
    handler,
    upgradeHandler,
    ready,
    registry,
    metrics,
    pools: () => registry.pools(),
    announcePool: (name) => state.readiness.announce(name),
    readiness: () => state.readiness.report(),
    get httpServer() {
      return httpServer;
    },
    async listen(listenOptions: ListenOptions = {}) {
      const host = listenOptions.host ?? '127.0.0.1';
      const port = listenOptions.port ?? 8080;
      if (auth.anonymous && !isLoopback(host)) {
        throw new InvalidOptionsError(
          `refusing to listen on ${host} without authentication: set SANDPOOL_ADMIN_KEY, API keys or JWT auth, or listen on 127.0.0.1`,
        );
      }
      if (httpServer !== undefined) throw new InvalidOptionsError('the server is already listening');
      const headersTimeout = options.headersTimeoutMs ?? 30_000;
      // requestTimeout stays 0: uploads of large files may legitimately take long once headers are in.
      const serverOptions = {
        maxHeaderSize: options.maxHeaderSize ?? 16 * 1024,
        headersTimeout,
        requestTimeout: 0,
        keepAliveTimeout: 5_000,
        // Node checks headersTimeout on this interval; keep it fine enough for short timeouts.
        connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(headersTimeout / 2))),
      };
      const server =
        options.tls === undefined
          ? createHttpServer(serverOptions, handler)
          : createHttpsServer(
              { ...serverOptions, cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile) },
              handler,
            );
      httpServer = server;
      server.on('upgrade', upgradeHandler);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        // A burst of clients (an agent fleet reconnecting, a flood) must queue, not be reset: Node's
        // default accept backlog is 511; the kernel caps this at net.core.somaxconn.
        server.listen({ port, host, backlog: 4096 }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      // A listening server emits 'error' for failures such as accept() running out of file
      // descriptors; without a listener that would end the process.
      server.on('error', (error) => log({ level: 'error', msg: 'server error', error: error.message }));
      const address = server.address() as AddressInfo;
      const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      const url = `${options.tls === undefined ? 'http' : 'https'}://${shown}:${address.port}`;
      log({ level: 'info', msg: 'listening', url, auth: auth.anonymous ? 'none (loopback only)' : 'required' });
      await ready;
      return { host: address.address, port: address.port, url };
    },
    close() {
      closing ??= shutdown();
      return closing;
    },
    async [Symbol.asyncDispose]() {
      await this.close();
    },
  };
}

export { authConfigured };

/**
 * Cut off a client that stalls in the middle of its request body. The socket's idle timer runs only
 * until the whole request has arrived (`req.complete`): a long execution afterwards, with a quiet
 * socket, is never cut. Node's requestTimeout stays off so large uploads may take their time.
 */
function guardStalledBody(req: IncomingMessage, res: ServerResponse, idleMs: number): void {
  if (req.complete || idleMs <= 0) return;
  // req.setTimeout (not socket.setTimeout): with a request-level listener Node hands the timeout to
  // us instead of destroying the socket before a 408 can be written.
  const clear = () => req.socket.setTimeout(0);
  req.setTimeout(idleMs, () => {
    clear();
    if (req.complete) return;
    if (!res.headersSent) {
      res.writeHead(408, { 'content-type': 'application/json', connection: 'close', 'x-ms-error-code': 'RequestTimeout' });
      res.end(JSON.stringify({ error: { code: 'RequestTimeout', message: `the request body stalled for ${idleMs} ms` } }));
    }
    // Let the 408 flush, then drop the connection whatever the client does.
    setTimeout(() => req.socket.destroy(), 100).unref();
  });
  // Cleared once the body is in. Not on 'finish': Node arms its keep-alive timer on the socket then.
  req.once('end', clear);
}
