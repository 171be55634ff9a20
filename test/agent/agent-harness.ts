/**
 * Starts the real agent (agent/sandpool_agent) with the host's Python in a temp data dir and
 * connects an AgentClient to it over stdio or a unix socket. Every test owns what it starts and
 * releases it in `close()`.
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';

import { AgentClient, agentCommand, type AgentClientOptions } from '../../backends/support/agent-client/index.js';
import type { SandpoolError } from '../../src/errors.js';

/** Prefer an interpreter that has matplotlib (Debian's python3-matplotlib) so image tests run. */
function pickPython(): string {
  const fromEnv = process.env.SANDPOOL_TEST_PYTHON;
  if (fromEnv) return fromEnv;
  const candidates = ['/usr/bin/python3', 'python3'];
  for (const candidate of candidates) {
    const probe = spawnSync(candidate, ['-c', 'import matplotlib, numpy'], { stdio: 'ignore' });
    if (probe.status === 0) return candidate;
  }
  return candidates.find((c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0) ?? 'python3';
}

export const PYTHON = pickPython();

export interface AgentHarness {
  readonly client: AgentClient;
  readonly child: ChildProcess;
  readonly dataDir: string;
  readonly socketPath?: string | undefined;
  /** The agent's own diagnostics so far (first 64 KiB). */
  stderr(): string;
  /** Errors passed to `onClose`. */
  readonly closeErrors: SandpoolError[];
  /** Opens another client on the unix socket (after the previous one disconnected). */
  reconnect(options?: AgentClientOptions): Promise<AgentClient>;
  close(): Promise<void>;
}

export interface StartOptions {
  readonly transport?: 'stdio' | 'unix';
  readonly preload?: readonly string[];
  readonly interruptGraceMs?: number;
  readonly client?: AgentClientOptions;
  /** Command prefix, e.g. `unshare` to run the agent as PID 1 of a new namespace. */
  readonly wrapper?: readonly string[];
  /**
   * Run the agent as `uid` (unused by anything else: its processes are killed at close) under
   * RLIMIT_NPROC `nproc`, which counts every thread and process of the uid, like a container's pids
   * cgroup or the VM guest's limit (backends/vm/guest-setup.ts). Needs root.
   */
  readonly processLimit?: { readonly uid: number; readonly nproc: number };
}

/** Pids of every process of `uid`, from /proc. */
export function processesOf(uid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (statSync(`/proc/${entry}`).uid === uid) found.push(Number(entry));
    } catch {
      // gone
    }
  }
  return found;
}

async function connectUnix(socketPath: string, child: ChildProcess): Promise<Socket> {
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`agent exited with ${child.exitCode} before listening`);
    if (existsSync(socketPath)) {
      try {
        return await new Promise<Socket>((resolve, reject) => {
          const socket = connect(socketPath);
          socket.once('connect', () => resolve(socket));
          socket.once('error', reject);
        });
      } catch {
        // not accepting yet
      }
    }
    if (Date.now() - started > 60_000) throw new Error('agent socket did not appear');
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function startAgent(options: StartOptions = {}): Promise<AgentHarness> {
  const transport = options.transport ?? 'stdio';
  const root = mkdtempSync(path.join(tmpdir(), 'sandpool-agent-test-'));
  const dataDir = path.join(root, 'data');
  const socketPath = transport === 'unix' ? path.join(root, 'agent.sock') : undefined;
  const argv = agentCommand({
    python: PYTHON,
    transport: socketPath ? { kind: 'unix', path: socketPath } : { kind: 'stdio' },
    dataDir,
    preload: options.preload ?? [],
    interruptGraceMs: options.interruptGraceMs ?? 1000,
  });
  const limit = options.processLimit;
  if (limit !== undefined) chownSync(root, limit.uid, limit.uid);
  const dropTo =
    limit === undefined
      ? []
      : [
          'setpriv',
          `--reuid=${limit.uid}`,
          `--regid=${limit.uid}`,
          '--clear-groups',
          '--',
          'prlimit',
          `--nproc=${limit.nproc}:${limit.nproc}`,
          '--',
        ];
  const command = [...(options.wrapper ?? []), ...dropTo, ...argv];
  const child = spawn(command[0] as string, command.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 65536) stderr += chunk.toString();
  });
  const closeErrors: SandpoolError[] = [];
  const clientOptions = (extra?: AgentClientOptions): AgentClientOptions => ({
    ...options.client,
    ...extra,
    onClose: (error) => closeErrors.push(error),
  });
  let stream: Duplex;
  if (socketPath) {
    stream = await connectUnix(socketPath, child);
  } else {
    stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
  }
  const client = new AgentClient(stream, clientOptions());
  const clients = [client];
  try {
    await client.ready(AbortSignal.timeout(120_000));
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`agent did not become ready: ${String(error)}\n${stderr}`);
  }
  return {
    client,
    child,
    dataDir,
    socketPath,
    closeErrors,
    stderr: () => stderr,
    async reconnect(extra) {
      if (!socketPath) throw new Error('reconnect needs the unix transport');
      const next = new AgentClient(await connectUnix(socketPath, child), clientOptions(extra));
      clients.push(next);
      await next.ready(AbortSignal.timeout(30_000));
      return next;
    },
    async close() {
      for (const c of clients) c.close();
      // Kernels run in their own process groups: collect them before the agent goes away.
      const kernels = child.pid === undefined ? [] : childPids(child.pid);
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
      for (const pid of kernels) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      // Under a uid of its own, what session code left behind (even in new sessions) goes too, and
      // is reaped (by init) before close resolves.
      if (limit !== undefined) {
        for (const pid of processesOf(limit.uid)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        for (let waited = 0; processesOf(limit.uid).length > 0; waited += 50) {
          if (waited > 10_000) throw new Error(`processes of uid ${limit.uid} survived: ${processesOf(limit.uid).join(' ')}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Direct children of `pid` (all threads), from /proc. */
export function childPids(pid: number): number[] {
  const pids: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (text) pids.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // the process is gone
  }
  return pids;
}

/** An ExecuteRequest with test defaults. */
export function run(
  code: string,
  extra: Partial<{
    language: 'python' | 'javascript' | 'shell';
    timeoutMs: number;
    outputMaxBytes: number;
    argv: string[];
    stdin: string;
    env: Record<string, string>;
  }> = {},
) {
  return {
    language: extra.language ?? ('python' as const),
    code,
    timeoutMs: extra.timeoutMs ?? 30_000,
    outputMaxBytes: extra.outputMaxBytes ?? 65_536,
    ...(extra.argv ? { argv: extra.argv } : {}),
    ...(extra.stdin !== undefined ? { stdin: extra.stdin } : {}),
    ...(extra.env !== undefined ? { env: extra.env } : {}),
  };
}
