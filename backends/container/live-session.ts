/**
 * One live container session and what happens around it: exit watching, reporting an exit to the
 * pool (once, and only after create resolved), the port forwarders, and teardown.
 */

import { rmSync } from 'node:fs';
import type { Agent as HttpAgent } from 'node:http';
import { join } from 'node:path';

import type Docker from 'dockerode';

import type { AgentClient } from '../support/agent-client/index.js';
import type { BackendExecuteOptions, CreateOptions, ExecuteRequest, ExecutionOutcome, SessionExit } from '../../src/backend.js';
import { BackendError, ErrorCode, SandpoolError, SessionNotFoundError } from '../../src/errors.js';
import { containerExitMessage } from './agent-connection.js';
import { startForwarder, type Forwarder } from './port-forwarder.js';

export interface LiveSession {
  readonly id: string;
  readonly kind: 'code-interpreter' | 'custom';
  readonly container: Docker.Container;
  readonly hostDir: string;
  /** Stops the exit watcher, liveness probes and forwarders. */
  readonly stop: AbortController;
  readonly forwarders: Map<number, Promise<Forwarder>>;
  agent?: AgentClient | undefined;
  httpAgent?: HttpAgent | undefined;
  pid: number;
  targetPort: number;
  /** Set once the container is known to have stopped (exit message). */
  exited?: string | undefined;
  onExit: CreateOptions['onExit'];
  /** create() resolved: exits are reported from then on (before, create rejects instead). */
  ready: boolean;
  exitReported: boolean;
  destroying?: Promise<void> | undefined;
}

/** Report the session's own end to the pool: once, after create resolved, never while we remove it. */
export function reportExit(live: LiveSession, exit: SessionExit): void {
  if (!live.ready || live.exitReported || live.destroying !== undefined) return;
  live.exitReported = true;
  try {
    live.onExit(exit);
  } catch {
    // The pool's callback must not break the backend.
  }
}

/** Long-poll the engine for the container's end; report it unless we are the ones removing it. */
export function watchExit(live: LiveSession): void {
  live.container.wait({ abortSignal: live.stop.signal } as object).then(
    (result: { StatusCode?: number }) => {
      if (live.stop.signal.aborted) return;
      const code = result.StatusCode ?? -1;
      live.exited = containerExitMessage(code);
      reportExit(live, { reason: code === 0 ? 'exited' : 'failed', message: live.exited, exitCode: code });
    },
    () => {
      // Aborted by destroy, or the engine went away: the agent connection reports the latter.
    },
  );
}

/** Why the container stopped (OOM, exit code), or undefined while it runs. */
export async function exitReason(live: LiveSession): Promise<string | undefined> {
  try {
    const state = (await live.container.inspect()).State;
    if (state.OOMKilled) return 'out of memory: the container was killed';
    if (!state.Running) return containerExitMessage(state.ExitCode);
  } catch {
    return 'the container is gone';
  }
  return undefined;
}

/** Run one execution on the session's agent; a sandbox that dies under it is an outcome, not a rejection. */
export async function executeOnAgent(
  live: LiveSession,
  agent: AgentClient,
  request: ExecuteRequest,
  options: BackendExecuteOptions | undefined,
): Promise<ExecutionOutcome> {
  if (live.destroying !== undefined) throw new SessionNotFoundError(`container session ${live.id} was destroyed`);
  const started = Date.now();
  try {
    return await agent.execute(request, { signal: options?.signal, onOutput: options?.onOutput });
  } catch (error) {
    if (SandpoolError.is(error) && error.code === ErrorCode.BACKEND_FAILED && agent.closed) {
      const why = live.exited ?? (await exitReason(live)) ?? 'the session agent connection closed';
      return {
        status: 'Failed',
        result: '',
        stdout: '',
        stderr: `sandpool: the session died during the execution (${why}); the session is lost\n`,
        sessionState: 'lost',
        executionTimeInMilliseconds: Date.now() - started,
      };
    }
    throw error;
  }
}

/** The forwarder socket reaching `port` inside the session, started on first use. */
export function forwarderSocket(live: LiveSession, port: number): Promise<string> {
  let forwarder = live.forwarders.get(port);
  if (forwarder === undefined) {
    forwarder = startForwarder(live.pid, port, join(live.hostDir, `port-${port}.sock`));
    live.forwarders.set(port, forwarder);
    forwarder.catch(() => live.forwarders.delete(port));
  }
  return forwarder.then((f) => f.socketPath);
}

/** Release everything of a session: watchers, agent connection, forwarders, container, host dir. */
export async function teardown(live: LiveSession, container: Docker.Container | undefined): Promise<void> {
  live.destroying ??= Promise.resolve();
  live.stop.abort();
  live.agent?.close();
  live.httpAgent?.destroy();
  const forwarders = await Promise.allSettled(live.forwarders.values());
  await Promise.allSettled(forwarders.map((f) => (f.status === 'fulfilled' ? f.value.stop() : undefined)));
  if (container !== undefined) {
    try {
      await container.remove({ force: true, v: true });
    } catch (error) {
      const status = (error as { statusCode?: number }).statusCode;
      if (status !== 404)
        throw new BackendError(`could not remove container ${container.id}: ${(error as Error).message}`, { cause: error });
    }
  }
  rmSync(live.hostDir, { recursive: true, force: true });
}
