/** The E2B test fixture: a real server over a Python container pool, with the SDKs' variables set. */

import { ContainerBackend } from '../../backends/container/index.js';
import { SessionPool } from '../../src/index.js';
import { ADMIN_KEY, startServer, type Harness } from './helpers.js';

export interface E2bHarness {
  readonly h: Harness;
  /** `http://127.0.0.1:PORT/e2b`, also in E2B_API_URL and E2B_SANDBOX_URL. */
  readonly base: string;
}

/** Serve a `python` pool of containers and point the E2B SDKs at it through their environment variables. */
export async function startE2bServer(ready = 2): Promise<E2bHarness> {
  const pool = new SessionPool({
    name: 'python',
    backend: new ContainerBackend(),
    containerType: 'PythonLTS',
    readySessionInstances: ready,
    maxConcurrentSessions: 6,
  });
  const h = await startServer({ pools: [pool], withDefaultPool: false });
  const base = `${h.url}/e2b`;
  process.env['E2B_API_URL'] = base;
  process.env['E2B_SANDBOX_URL'] = base;
  process.env['E2B_API_KEY'] = ADMIN_KEY;
  return { h, base };
}

/** A raw in-sandbox request, as the SDK sends it, with a chosen token. */
export function inSandbox(
  base: string,
  sandboxId: string,
  token: string,
  path: string,
  init: RequestInit & { port?: string } = {},
): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('E2b-Sandbox-Id', sandboxId);
  headers.set('E2b-Sandbox-Port', init.port ?? '49983');
  headers.set('X-Access-Token', token);
  return fetch(`${base}${path}`, { ...init, headers });
}
