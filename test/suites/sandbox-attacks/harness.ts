/**
 * Host side of the out-of-process attack suite: canaries the sandbox must not see (a file in a
 * fresh host directory, a host process with a random string in its environment and command line),
 * real listeners the sandbox must not reach (a plain HTTP server on every host address and the
 * real sandpool server on loopback), and the health checks run after every attack.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'vitest';

import { QuickJSBackend } from '../../../backends/quickjs/index.js';
import { ErrorCode, FileError, SandpoolError } from '../../../src/errors.js';
import type { Session, SessionPool } from '../../../src/index.js';
import { SessionPool as Pool } from '../../../src/index.js';
import { createServer as createSandpoolServer, silentLogger, type SandpoolServer } from '../../../src/server/index.js';
import type { HostFacts } from './probe-scripts.js';

export interface HostFixtures {
  readonly facts: HostFacts;
  /** Requests the plain listener answered (must stay 0: nothing from a sandbox got through). */
  readonly hits: () => number;
  close(): Promise<void>;
}

/** The host's own non-loopback IPv4 addresses. */
export function hostAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((i) => i !== undefined && i.family === 'IPv4' && !i.internal)
    .map((i) => i!.address);
}

export async function startHostFixtures(
  extraTargets: readonly (readonly [string, string, number])[] = [],
): Promise<HostFixtures> {
  const canary = `sandpool-canary-${randomBytes(8).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'sandpool-security-'));
  const hostCanaryFile = join(dir, 'host-only.txt');
  writeFileSync(hostCanaryFile, canary);

  // A host process whose environment and argv carry the canary ($0 of the shell is the canary).
  // The embedding process's own environment carries it too: a backend that forwarded the host's
  // environment into sessions would show it.
  process.env['SANDPOOL_SECURITY_CANARY'] = canary;
  const canaryProcess: ChildProcess = spawn('sh', ['-c', 'sleep 600; :', canary], {
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', SANDPOOL_SECURITY_CANARY: canary },
    stdio: 'ignore',
  });

  let hits = 0;
  const listener: Server = createServer((_req, res) => {
    hits += 1;
    res.end('host-service\n');
  });
  await new Promise<void>((resolve) => listener.listen(0, '0.0.0.0', resolve));
  const port = (listener.address() as { port: number }).port;

  // The embedding process's own API: a real sandpool server on loopback (its default and rule).
  const embedded: SandpoolServer = createSandpoolServer({
    pools: [new Pool({ name: 'embedded', backend: new QuickJSBackend(), containerType: 'NodeLTS', readySessionInstances: 0 })],
    auth: { adminKey: `k-${randomBytes(16).toString('hex')}` },
    dataDir: join(dir, 'server-data'),
    logger: silentLogger,
  });
  const { url } = await embedded.listen({ host: '127.0.0.1', port: 0 });
  const serverPort = Number(new URL(url).port);

  const targets: (readonly [string, string, number])[] = [
    ['loopback listener', '127.0.0.1', port],
    ['embedding server', '127.0.0.1', serverPort],
    ['slirp host alias 10.0.2.2', '10.0.2.2', port],
    ['podman gateway 10.88.0.1', '10.88.0.1', port],
    ['metadata 169.254.169.254', '169.254.169.254', 80],
    ...hostAddresses().map((address) => [`host address ${address}`, address, port] as const),
    ...extraTargets,
  ];
  return {
    facts: {
      hostCanaryFile,
      repoFile: join(import.meta.dirname, 'harness.ts'),
      canary,
      canaryPid: canaryProcess.pid ?? -1,
      targets,
    },
    hits: () => hits,
    async close() {
      canaryProcess.kill('SIGKILL');
      delete process.env['SANDPOOL_SECURITY_CANARY'];
      await new Promise<void>((resolve) => listener.close(() => resolve()));
      await embedded.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A connect attempt that did not get through: anything but 'connected …'. */
export function expectUnreachable(results: Record<string, unknown>, labels: readonly string[]): void {
  for (const label of labels) {
    expect(results[label], label).toBeDefined();
    expect(String(results[label]), label).toMatch(/^ERR /);
  }
}

/** A bystander session with state, checked after every attack. */
export class Bystander {
  readonly #pool: SessionPool;
  readonly identifier = Pool.generateIdentifier();
  readonly #token = randomBytes(8).toString('hex');
  #sessionId = '';

  constructor(pool: SessionPool) {
    this.#pool = pool;
  }

  async plant(): Promise<void> {
    const session = await this.#pool.acquire(this.identifier);
    this.#sessionId = session.id;
    const set = await session.execute({ code: `bystander_state = ${JSON.stringify(this.#token)}\nbystander_state` });
    expect(set).toMatchObject({ status: 'Succeeded', result: this.#token });
  }

  /** Same session (not replaced), state intact, answering promptly enough. */
  async expectHealthy(): Promise<void> {
    const session: Session = await this.#pool.acquire(this.identifier);
    expect(session.id).toBe(this.#sessionId);
    const check = await session.execute({ code: 'bystander_state', timeoutInSeconds: 60 });
    expect(check).toMatchObject({ status: 'Succeeded', result: this.#token });
  }
}

/** The embedding process still runs its event loop (a timer fires) and the pool is open. */
export async function expectHostHealthy(pool: SessionPool): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 1));
  const stats = pool.stats();
  expect(stats.closed).toBe(false);
  expect(stats.createFailures).toBe(0); // attacks never broke the creation of new sessions
  expect(stats.allocated + stats.ready + stats.pending).toBeLessThanOrEqual(stats.maxConcurrentSessions);
}

/** The operation rejects with a typed FileError of the given code. */
export async function expectFileError(operation: () => Promise<unknown>, code: string, what: string): Promise<void> {
  const error = await operation().then(
    () => new Error(`${what}: expected a FileError ${code}, but it succeeded`),
    (e: unknown) => e,
  );
  expect(SandpoolError.is(error), `${what}: ${String(error)}`).toBe(true);
  expect(error, what).toBeInstanceOf(FileError);
  expect((error as SandpoolError).code, what).toBe(code);
}

export { ErrorCode };
