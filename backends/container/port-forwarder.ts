/**
 * Reaching a port inside a container that has no network (`NetworkMode: none`) or whose network
 * the host should not expose. We run `socat` in the container's network namespace only
 * (`nsenter --net`), listening on a unix socket in a root-only host directory: the host process
 * reaches the session's port through that socket, and no TCP port is opened on the host, so other
 * users of the host cannot reach the session. socat stays in the host's mount, pid and user
 * namespaces; it only ever connects to 127.0.0.1:<port> inside the container's namespace.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';

import { BackendError, ErrorCode } from '../../src/errors.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface Forwarder {
  readonly socketPath: string;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

export function forwarderAvailable(): string | undefined {
  for (const tool of ['/usr/bin/socat', '/usr/bin/nsenter']) {
    if (!existsSync(tool)) return `${tool} is missing (apt-get install socat util-linux)`;
  }
  return undefined;
}

/** Start socat in the network namespace of `pid`, forwarding `socketPath` to 127.0.0.1:`port`. */
export async function startForwarder(pid: number, port: number, socketPath: string): Promise<Forwarder> {
  const socat = ['/usr/bin/socat', `UNIX-LISTEN:${socketPath},fork,mode=600,unlink-early`, `TCP:127.0.0.1:${port}`];
  const args = ['--pdeathsig', 'SIGKILL', '/usr/bin/nsenter', `--target=${pid}`, '--net', ...socat];
  const child = spawn('/usr/bin/setpriv', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-1000);
  });
  child.on('error', (error) => {
    stderr += error.message;
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    // socat forks a child per connection: kill its whole process group would also be possible,
    // but children exit on their own when either side closes; SIGTERM makes socat stop them too.
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
  };
  // socat binds the socket, chmods it, then listens: a connect in between is refused. Ready means
  // listening, read from the kernel's table (a probe connection would reach the session's server).
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) break;
    if (child.pid !== undefined && isUnixListening(child.pid, socketPath)) return { socketPath, child, stop };
    await sleep(10);
  }
  await stop();
  throw new BackendError(`could not start the port forwarder for container pid ${pid}: ${stderr.trim() || 'timed out'}`);
}

/**
 * True when a socket in the network namespace of `pid` listens on `port` (any address), read from
 * /proc/PID/net/tcp{,6}: exact, and it needs no connection that a server could count or log.
 */
export function isListening(pid: number, port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['tcp', 'tcp6']) {
    let table: string;
    try {
      table = readFileSync(`/proc/${pid}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of table.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // cols[1] = local "ADDR:PORT", cols[3] = state; 0A = LISTEN.
      if (cols[3] === '0A' && cols[1]?.endsWith(`:${hexPort}`)) return true;
    }
  }
  return false;
}

/**
 * True when a unix socket bound to `path` listens, from /proc/PID/net/unix of a process in the
 * listener's network namespace (flag __SO_ACCEPTCON, 0x10000, is set by listen()).
 */
export function isUnixListening(pid: number, path: string): boolean {
  let table: string;
  try {
    table = readFileSync(`/proc/${pid}/net/unix`, 'utf8');
  } catch {
    return false;
  }
  for (const line of table.split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path
    const cols = line.trim().split(/\s+/);
    if (cols.length >= 8 && cols.slice(7).join(' ') === path && (Number.parseInt(cols[3] ?? '0', 16) & 0x10000) !== 0)
      return true;
  }
  return false;
}

/** A raw connection to the session's port through the forwarder socket. */
export function connectForwarder(socketPath: string, timeoutMs = 10_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new BackendError(`connecting to the session port timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(
        new BackendError(`cannot reach the session port: ${error.message}`, {
          code: ErrorCode.BACKEND_FAILED,
          cause: error,
        }),
      );
    });
  });
}
