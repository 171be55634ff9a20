/** Shared test fixtures: a real server on loopback port 0 over real QuickJS sessions. */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { QuickJSBackend } from '../../backends/quickjs/index.js';
import { SessionPool } from '../../src/index.js';
import {
  createServer,
  silentLogger,
  type CreateServerOptions,
  type LogRecord,
  type SandpoolServer,
} from '../../src/server/index.js';
import { trapProcessErrors } from '../helpers/process-errors.js';

export interface Harness {
  readonly server: SandpoolServer;
  readonly url: string;
  readonly logs: LogRecord[];
  readonly dataDir: string;
  /** `fetch` relative to the server, with the admin credential unless headers override it. */
  request(path: string, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

export const ADMIN_KEY = 'test-admin-key-0123456789';

export function jsPool(name: string, extra: Record<string, unknown> = {}): SessionPool {
  return new SessionPool({
    name,
    backend: new QuickJSBackend(),
    containerType: 'NodeLTS',
    readySessionInstances: 1,
    maxConcurrentSessions: 10,
    ...extra,
  });
}

/** What every test server shares: the admin key, its data dir, and a logger that keeps the records quietly. */
export function testServerOptions(dataDir: string, logs: LogRecord[]): Partial<CreateServerOptions> {
  return {
    auth: { adminKey: ADMIN_KEY },
    dataDir,
    logger: (record) => {
      logs.push(record);
      silentLogger(record);
    },
  };
}

export async function startServer(options: Partial<CreateServerOptions> & { withDefaultPool?: boolean } = {}): Promise<Harness> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'sandpool-server-test-')));
  // Every server test fails on an uncaughtException or unhandledRejection while its server runs:
  // an emitter or stream without an error path would end a real server process.
  const processErrors = trapProcessErrors();
  const logs: LogRecord[] = [];
  const { withDefaultPool = true, ...rest } = options;
  const server = createServer({
    pools: withDefaultPool ? [jsPool('js')] : [],
    backends: { quickjs: () => new QuickJSBackend() },
    ...testServerOptions(dataDir, logs),
    ...rest,
  });
  const { url } = await server.listen({ host: '127.0.0.1', port: 0 });
  return {
    server,
    url,
    logs,
    dataDir,
    request(path, init = {}) {
      const headers = new Headers(init.headers);
      if (!headers.has('authorization')) headers.set('authorization', `Bearer ${ADMIN_KEY}`);
      return fetch(`${url}${path}`, { ...init, headers });
    },
    async close() {
      try {
        await server.close();
        if (options.dataDir === undefined) await rm(dataDir, { recursive: true, force: true });
      } finally {
        processErrors.assertNone();
      }
    },
  };
}

export async function json(response: Response): Promise<Record<string, any>> {
  const text = await response.text();
  try {
    return JSON.parse(text) as Record<string, any>;
  } catch {
    throw new Error(`not JSON (status ${response.status}): ${text.slice(0, 500)}`);
  }
}

export function newIdentifier(): string {
  return SessionPool.generateIdentifier();
}

/**
 * Whether the container backend can run here (podman and the code-interpreter image). Under CI a
 * missing engine is a failure, not a skip: the setup installs it.
 */
export async function containerBackendAvailable(): Promise<boolean> {
  const { spawnSync } = await import('node:child_process');
  const ci = process.env['CI'] === 'true' || process.env['CI'] === '1';
  const ok = spawnSync('podman', ['image', 'exists', 'localhost/sandpool/code-interpreter:latest']).status === 0;
  if (!ok && ci)
    throw new Error(
      'the container backend (podman + localhost/sandpool/code-interpreter) is required under CI; npm run setup installs it',
    );
  return ok;
}

/** A multipart body exactly as Python `requests` builds it for `files={"file": (name, data, type)}`. */
export function requestsMultipart(
  filename: string,
  data: Uint8Array | string,
  contentType = 'application/octet-stream',
): { body: Buffer; contentType: string } {
  const boundary = 'a3f1c2e4b5d6978812345678abcdef00';
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: ${contentType}\r\n\r\n`;
  const body = Buffer.concat([Buffer.from(head), Buffer.from(data), Buffer.from(`\r\n--${boundary}--\r\n`)]);
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}
