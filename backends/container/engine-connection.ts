/**
 * Finding a Docker Engine API endpoint: `DOCKER_HOST`, an explicit socket, a well-known socket that
 * answers (Docker's, rootful or rootless Podman's), or — when none answers — a
 * `podman system service` this process starts and owns. The child is tied to us with
 * PR_SET_PDEATHSIG (setpriv) so it cannot outlive a crashed owner, and is stopped by `close()`.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';

import Docker from 'dockerode';

import { BackendError, ErrorCode } from '../../src/errors.js';
import { refuseEngineRedirects } from './engine-redirects.js';

export type ConnectionKind = 'DOCKER_HOST' | 'socket' | 'found' | 'started';

export interface EngineConnection {
  readonly docker: Docker;
  readonly kind: ConnectionKind;
  /** Human-readable: which endpoint, and how it was chosen. */
  readonly description: string;
  /** The engine is Podman (its Docker API differs in details: tmpfs options, runtimes list). */
  readonly podman: boolean;
  /** Unix socket path, when the endpoint is one. */
  readonly socketPath: string | undefined;
  /** Stops the engine service we started, if any. */
  close(): Promise<void>;
}

export interface ConnectOptions {
  /** Explicit engine socket; wins over DOCKER_HOST. */
  readonly socketPath?: string | undefined;
  /** Where a self-started podman service puts its socket. */
  readonly runDir: string;
  /** Start `podman system service` when nothing answers. @default true */
  readonly startPodman?: boolean | undefined;
  /** Do not look for DOCKER_HOST or well-known sockets: always start our own podman service. */
  readonly skipWellKnown?: boolean | undefined;
  readonly log: (message: string) => void;
}

/** Well-known sockets, most specific first. */
function candidateSockets(): string[] {
  const uid = process.getuid?.() ?? 0;
  const list = ['/run/podman/podman.sock', '/var/run/docker.sock', `/run/user/${uid}/podman/podman.sock`];
  if (process.env.XDG_RUNTIME_DIR !== undefined) list.push(join(process.env.XDG_RUNTIME_DIR, 'podman', 'podman.sock'));
  return [...new Set(list)];
}

/** GET /_ping over a unix socket: true when an engine answers 200. */
export function pingSocket(socketPath: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    if (!existsSync(socketPath)) {
      resolve(false);
      return;
    }
    const req = request({ socketPath, path: '/_ping', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

async function pingDocker(docker: Docker): Promise<void> {
  await docker.ping();
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function startPodmanService(
  runDir: string,
  log: (m: string) => void,
): Promise<{ socketPath: string; child: ChildProcess }> {
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  // Unique per service: two backends of one process may each start one, and close() removes its own.
  const socketPath = join(runDir, `podman-${process.pid}-${randomBytes(4).toString('hex')}.sock`);
  rmSync(socketPath, { force: true });
  const args = ['system', 'service', '--time=0', `unix://${socketPath}`];
  // cwd '/': conmon drops an `oom` marker into the service's working directory on an OOM kill.
  // setpriv --pdeathsig: the kernel sends SIGTERM to the service when this process dies.
  const useSetpriv = existsSync('/usr/bin/setpriv');
  const child = useSetpriv
    ? spawn('/usr/bin/setpriv', ['--pdeathsig', 'SIGTERM', 'podman', ...args], { cwd: '/', stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn('podman', args, { cwd: '/', stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2000);
  });
  let failed: Error | undefined;
  child.on('error', (error) => {
    failed = error;
  });
  for (let i = 0; i < 150; i++) {
    if (failed !== undefined || child.exitCode !== null) break;
    if (await pingSocket(socketPath, 500)) {
      log(`started podman system service on ${socketPath} (pid ${child.pid})`);
      child.stderr?.removeAllListeners('data');
      child.stderr?.resume();
      return { socketPath, child };
    }
    await sleep(100);
  }
  child.kill('SIGKILL');
  const why = failed?.message ?? (stderr.trim() || 'no answer within 15 s');
  throw new BackendError(`no container engine reachable and starting "podman system service" failed: ${why}`, {
    code: ErrorCode.BACKEND_UNAVAILABLE,
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** Resolve the engine endpoint, in this order: explicit socket, DOCKER_HOST, well-known sockets, a podman we start. */
export async function connectEngine(options: ConnectOptions): Promise<EngineConnection> {
  refuseEngineRedirects();
  const connection = await resolveEngine(options);
  try {
    const version = await connection.docker.version();
    const podman = (version.Components ?? []).some((c) => /podman/i.test(c.Name));
    return { ...connection, podman };
  } catch (error) {
    await connection.close();
    throw new BackendError(`the container engine did not report its version: ${(error as Error).message}`, {
      code: ErrorCode.BACKEND_UNAVAILABLE,
      cause: error,
    });
  }
}

async function resolveEngine(options: ConnectOptions): Promise<Omit<EngineConnection, 'podman'>> {
  const plain = (
    docker: Docker,
    kind: ConnectionKind,
    description: string,
    socketPath?: string,
  ): Omit<EngineConnection, 'podman'> => ({
    docker,
    kind,
    description,
    socketPath,
    close: async () => {},
  });
  const unavailable = (message: string, cause?: unknown) =>
    new BackendError(message, { code: ErrorCode.BACKEND_UNAVAILABLE, cause });

  if (options.socketPath !== undefined) {
    const docker = new Docker({ socketPath: options.socketPath });
    try {
      await pingDocker(docker);
    } catch (error) {
      throw unavailable(`no container engine answers on the socket ${options.socketPath}: ${(error as Error).message}`, error);
    }
    return plain(docker, 'socket', `socket ${options.socketPath} (option)`, options.socketPath);
  }
  const dockerHost = options.skipWellKnown === true ? undefined : process.env.DOCKER_HOST;
  if (dockerHost !== undefined && dockerHost !== '') {
    let docker: Docker;
    try {
      docker = new Docker();
      await pingDocker(docker);
    } catch (error) {
      throw unavailable(`no container engine answers at DOCKER_HOST=${dockerHost}: ${(error as Error).message}`, error);
    }
    const socketPath = dockerHost.startsWith('unix://') ? dockerHost.slice(7) : undefined;
    return plain(docker, 'DOCKER_HOST', `DOCKER_HOST=${dockerHost}`, socketPath);
  }
  for (const socketPath of options.skipWellKnown === true ? [] : candidateSockets()) {
    if (await pingSocket(socketPath)) {
      return plain(new Docker({ socketPath }), 'found', `socket ${socketPath} (found)`, socketPath);
    }
  }
  if (options.startPodman === false) {
    throw unavailable(
      `no container engine reachable (tried ${candidateSockets().join(', ')}); set DOCKER_HOST, pass socketPath, ` +
        'or start one (podman system service / dockerd)',
    );
  }
  const { socketPath, child } = await startPodmanService(options.runDir, options.log);
  const docker = new Docker({ socketPath });
  return {
    docker,
    kind: 'started',
    description: `socket ${socketPath} (podman system service started by this process, pid ${child.pid})`,
    socketPath,
    close: async () => {
      await stopChild(child);
      rmSync(socketPath, { force: true });
    },
  };
}
