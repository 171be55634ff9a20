/**
 * A Docker Engine API stand-in on a unix socket that answers /_ping and /version like Podman and
 * every other call with a redirect to `location`. Used to prove the container backend never
 * follows an engine redirect and that a server survives an engine that misbehaves.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedirectingEngine {
  readonly socketPath: string;
  readonly dir: string;
  /** Where redirects point; change it between tests. */
  location: string;
  /** A TCP listener to point redirects at: counts every request that reaches it. */
  readonly trapUrl: string;
  trapHits(): number;
  close(): Promise<void>;
}

function listen(server: Server, target: string | number): Promise<void> {
  return new Promise((resolve) => server.listen(target, () => resolve()));
}

export async function startRedirectingEngine(): Promise<RedirectingEngine> {
  const dir = mkdtempSync(join(tmpdir(), 'sandpool-fake-engine-'));
  const socketPath = join(dir, 'engine.sock');
  let hits = 0;
  const trap = createServer((_req, res) => {
    hits++;
    res.end('{}');
  });
  await listen(trap, 0);
  const trapUrl = `http://127.0.0.1:${(trap.address() as AddressInfo).port}`;
  const state = { location: `${trapUrl}/images/x/json` };
  const engine = createServer((req, res) => {
    const path = (req.url ?? '').replace(/^\/v[\d.]+/, '');
    if (path.startsWith('/_ping')) return void res.end('OK');
    if (path.startsWith('/version')) {
      res.setHeader('content-type', 'application/json');
      return void res.end(JSON.stringify({ Version: '4.3.1', ApiVersion: '1.41', Components: [{ Name: 'Podman Engine' }] }));
    }
    res.writeHead(301, { location: state.location });
    res.end();
  });
  await listen(engine, socketPath);
  return {
    socketPath,
    dir,
    get location() {
      return state.location;
    },
    set location(value: string) {
      state.location = value;
    },
    trapUrl,
    trapHits: () => hits,
    async close() {
      await new Promise((r) => trap.close(r));
      await new Promise((r) => engine.close(r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
