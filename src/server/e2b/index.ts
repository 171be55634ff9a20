/**
 * The E2B-compatible API, served under `/e2b` by `createServer` (and so by `sandpool serve`). The
 * E2B SDKs reach it with `E2B_API_URL` and `E2B_SANDBOX_URL` both set to `http://HOST:PORT/e2b`:
 * control-plane requests carry `X-API-KEY`; in-sandbox requests carry `E2b-Sandbox-Id`,
 * `E2b-Sandbox-Port` (49983 envd, 49999 code interpreter) and the sandbox's access token. A thin
 * adapter over the library, like the Azure routes: the dispatcher wraps it with the same request
 * ids, audit records and metrics. See docs/E2B.md.
 */

import type { Authenticator } from '../auth.js';
import type { ServerState } from '../server-state.js';
import { matchInterpreter } from './code-interpreter.js';
import { type E2bContext, type E2bOptions, type E2bRequest, resolveE2bOptions } from './context.js';
import { ServerStream, readRequestMessage, rpcKind, sendRpcError, sendUnary } from './connect-rpc.js';
import { authenticateApiKey, matchControlPlane } from './control-plane.js';
import { download, upload } from './envd-files.js';
import { E2bError, isExpectedFailure, sandboxGone, toE2bError, unsupported } from './errors.js';
import { filesystemMethod, requireFiles } from './filesystem-service.js';
import { resumeSandbox } from './lifetime.js';
import { connectProcess, processMethod, startProcess } from './process-service.js';
import { type LiveSandbox, SANDBOX_ID, SandboxRegistry, sameToken } from './sandboxes.js';

export type { AuditFields, E2bOptions, E2bRequest } from './context.js';
export { DEFAULT_TEMPLATES } from './context.js';

export const E2B_PREFIX = '/e2b';
export const ENVD_PORT = '49983';
export const INTERPRETER_PORT = '49999';

const RPC_METHODS: Readonly<Record<string, ReadonlySet<string>>> = {
  'filesystem.Filesystem': new Set([
    'Stat',
    'MakeDir',
    'Move',
    'ListDir',
    'Remove',
    'WatchDir',
    'CreateWatcher',
    'GetWatcherEvents',
    'RemoveWatcher',
  ]),
  'process.Process': new Set(['List', 'Connect', 'Start', 'Update', 'StreamInput', 'SendInput', 'SendSignal', 'CloseStdin']),
};

/** The E2B API as the dispatcher sees it. */
export interface E2bApi {
  /** Whether a request path belongs to the E2B API. */
  owns(pathname: string): boolean;
  /** Answer one request; never rejects (failures are answered in E2B's shapes). */
  handle(request: E2bRequest): Promise<void>;
  /** The sandboxes this API created and still tracks. */
  readonly sandboxCount: number;
  /** Clear the sandboxes' timers (their sessions end with the pools). */
  close(): void;
}

type RequestKind = 'rest' | 'rpc';

export function createE2bApi(state: ServerState, auth: Authenticator, options?: E2bOptions): E2bApi {
  const ctx: E2bContext = {
    state,
    options: resolveE2bOptions(options),
    sandboxes: new SandboxRegistry((name) => state.registry.get(name)?.pool, state.log),
  };

  async function controlPlane(r: E2bRequest, path: string): Promise<void> {
    const route = matchControlPlane(r.req.method ?? 'GET', path);
    r.audit({ operation: route?.operation ?? 'e2b.unmatched' });
    if (route === undefined)
      throw new E2bError(404, 'not_found', `no E2B API route ${(r.req.method ?? '').slice(0, 10)} ${path.slice(0, 200)}`);
    const principal = await authenticateApiKey(auth, r);
    r.audit({ principal });
    await route.handle(ctx, r, principal);
  }

  function sandboxOf(r: E2bRequest, sandboxId: string): LiveSandbox {
    if (!SANDBOX_ID.test(sandboxId)) throw sandboxGone(sandboxId.slice(0, 64));
    const live = ctx.sandboxes.find(sandboxId);
    if (live === undefined) throw sandboxGone(sandboxId);
    r.audit({ pool: live.pool.name });
    // runCode sends X-Access-Token; the code interpreter's /contexts calls only the traffic token.
    const token = r.req.headers['x-access-token'] ?? r.req.headers['e2b-traffic-access-token'];
    if (typeof token !== 'string' || !sameToken(token, live.sandbox.accessToken)) {
      throw new E2bError(401, 'unauthenticated', 'missing or invalid access token for this sandbox');
    }
    // The token stands for whoever created the sandbox.
    r.audit({ principal: live.sandbox.createdBy });
    return live;
  }

  async function rpc(r: E2bRequest, live: LiveSandbox, service: string, method: string): Promise<void> {
    const kind = rpcKind(r.req);
    const stream = kind === 'stream' ? new ServerStream(r.res) : undefined;
    try {
      const message = await readRequestMessage(r.req, kind, state.maxJsonBytes);
      if (stream !== undefined) {
        if (service === 'process.Process' && method === 'Start') return await startProcess(r, live, message, stream);
        if (service === 'process.Process' && method === 'Connect') return await connectProcess(r, live, message, stream);
        if (method === 'WatchDir') throw unsupported('watching directories');
        throw new E2bError(400, 'invalid_argument', `${service}/${method} is not a streaming method`);
      }
      if (service === 'filesystem.Filesystem') {
        requireFiles(live);
        return sendUnary(r.res, await filesystemMethod(method)(live, message));
      }
      return sendUnary(r.res, await processMethod(method, live, message));
    } catch (error) {
      if (stream === undefined) throw error;
      logUnexpected(r, error);
      stream.end(toE2bError(error));
    }
  }

  async function envd(r: E2bRequest, live: LiveSandbox, path: string): Promise<void> {
    const method = r.req.method ?? 'GET';
    const rpcPath = /^\/([a-z]+\.[A-Za-z]+)\/([A-Za-z]+)$/.exec(path);
    if (rpcPath !== null && method === 'POST') {
      const [, service, name] = rpcPath as unknown as [string, string, string];
      const known = RPC_METHODS[service]?.has(name) === true;
      r.audit({ operation: known ? `e2b.rpc.${service.split('.')[0]}.${name}` : 'e2b.rpc.unknown' });
      if (!known) throw new E2bError(404, 'unimplemented', `${service}/${name} is not a method envd offers`);
      return rpc(r, live, service, name);
    }
    if (path === '/files' && (method === 'GET' || method === 'POST')) {
      r.audit({ operation: method === 'GET' ? 'e2b.files.read' : 'e2b.files.write' });
      requireFiles(live);
      return method === 'GET' ? download(ctx, r, live) : upload(ctx, r, live);
    }
    if (path === '/health' && method === 'GET') {
      r.audit({ operation: 'e2b.envd.health' });
      r.res.writeHead(204).end();
      return;
    }
    r.audit({ operation: 'e2b.envd.unsupported' });
    if (['/envs', '/metrics', '/files/compose', '/init'].includes(path)) throw unsupported(`envd's ${path}`);
    throw new E2bError(404, 'not_found', `no envd route ${method.slice(0, 10)} ${path.slice(0, 200)}`);
  }

  async function inSandbox(r: E2bRequest, path: string, sandboxId: string): Promise<void> {
    const port = r.req.headers['e2b-sandbox-port'];
    r.audit({ operation: 'e2b.sandbox' });
    const live = sandboxOf(r, sandboxId);
    if (live.session.state === 'Paused') {
      // A health check only asks; any other traffic resumes the sandbox if it was created with
      // autoResume, and otherwise finds it gone until `connect` resumes it (E2B's semantics).
      if (path === '/health' || !live.sandbox.autoResume) {
        throw new E2bError(502, 'unavailable', `the sandbox ${sandboxId} is paused: connect to it to resume it`);
      }
      await resumeSandbox(ctx, live);
    }
    if (port === ENVD_PORT) return envd(r, live, path);
    if (port === INTERPRETER_PORT) {
      const route = matchInterpreter(r.req.method ?? 'GET', path);
      r.audit({ operation: route?.operation ?? 'e2b.interpreter.unmatched' });
      if (route === undefined) throw new E2bError(404, 'not_found', `no code interpreter route ${path.slice(0, 200)}`);
      return route.handle(ctx, r, live);
    }
    throw new E2bError(502, 'unavailable', `port ${String(port).slice(0, 8)} is not open in this sandbox (49983 and 49999 are)`);
  }

  function logUnexpected(r: E2bRequest, error: unknown): void {
    if (isExpectedFailure(error)) return;
    state.log({
      level: 'error',
      msg: 'e2b request failed',
      requestId: r.requestId,
      error: (error as Error)?.message ?? String(error),
    });
  }

  function answerError(r: E2bRequest, kind: RequestKind, error: unknown): void {
    logUnexpected(r, error);
    if (r.res.headersSent) {
      r.res.destroy();
      return;
    }
    const failure = toE2bError(error);
    if (!r.req.readableEnded) r.req.resume();
    if (kind === 'rpc') {
      sendRpcError(r.res, failure);
      return;
    }
    const text = JSON.stringify({ code: failure.status, message: failure.message });
    r.res.writeHead(failure.status, {
      ...failure.headers,
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    });
    r.res.end(text);
  }

  return {
    owns: (pathname) => pathname === E2B_PREFIX || pathname.startsWith(`${E2B_PREFIX}/`),
    async handle(r) {
      const path = r.url.pathname.slice(E2B_PREFIX.length) || '/';
      const sandboxId = r.req.headers['e2b-sandbox-id'];
      const kind: RequestKind = sandboxId !== undefined && /^\/[a-z]+\.[A-Za-z]+\//.test(path) ? 'rpc' : 'rest';
      try {
        if (sandboxId === undefined) await controlPlane(r, path);
        else await inSandbox(r, path, String(sandboxId));
      } catch (error) {
        answerError(r, kind, error);
      }
    },
    get sandboxCount() {
      return ctx.sandboxes.size;
    },
    close() {
      ctx.sandboxes.close();
    },
  };
}
