/**
 * The end of a container session's start, once its container runs: wait until the session answers
 * (the agent's socket, or a custom container's readiness), and turn a start that failed into the
 * error `create` rejects with, after removing what it made.
 */

import { chmodSync, chownSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { join } from 'node:path';

import type Docker from 'dockerode';

import type { SessionSpec } from '../../src/backend.js';
import { BackendError, ErrorCode, SandpoolError } from '../../src/errors.js';
import { connectAgent } from './agent-connection.js';
import { containerLogTail, redact } from './container-logs.js';
import { reportExit, teardown, type LiveSession } from './live-session.js';
import { waitUntilReady, watchLiveness, type ProbeTarget } from './readiness.js';

/** Resolves once the session can be handed out; rejects when it died or the deadline passed. */
export async function waitForSession(
  live: LiveSession,
  spec: SessionSpec,
  options: { readonly deadline: number; readonly signal: AbortSignal | undefined; readonly probe: ProbeTarget },
): Promise<void> {
  const { deadline, signal } = options;
  if (live.kind === 'custom') {
    const template = spec.customContainer!;
    await waitUntilReady({ template, target: options.probe, deadline, stopped: () => live.exited, signal });
    live.httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 64 });
    watchLiveness(template, options.probe, live.stop.signal, (message) => reportExit(live, { reason: 'failed', message }));
    return;
  }
  live.agent = await connectAgent({
    socketPath: join(live.hostDir, 'agent.sock'),
    deadline,
    stopped: () => live.exited,
    signal,
    onClose: () => {
      if (live.destroying === undefined) reportExit(live, { reason: 'failed', message: 'the session agent connection closed' });
    },
  });
  if (spec.containerType === 'NodeLTS') {
    // The agent starts its Node.js kernel on the first JavaScript cell (~150 ms): start it now,
    // while the session is still Pending, so a Ready JavaScript session answers at once.
    await live.agent.execute(
      { language: 'javascript', code: '0', timeoutMs: Math.max(1_000, deadline - Date.now()), outputMaxBytes: 1024 },
      { signal },
    );
  }
  // The agent's socket exists now: hand the directory back to root (0755) so session code can
  // neither fill the host's disk through this bind mount nor replace or remove the socket.
  chownSync(live.hostDir, 0, 0);
  chmodSync(live.hostDir, 0o755);
}

/**
 * Remove what a failed start made and say why it failed: the container's exit when it died (with
 * a custom container's last output, secret values masked), else the error itself. An abort stays
 * an abort; an engine that is unreachable stays BACKEND_UNAVAILABLE.
 */
export async function failedCreate(
  error: unknown,
  live: LiveSession,
  container: Docker.Container | undefined,
  spec: SessionSpec,
  forget: () => void,
): Promise<unknown> {
  const reason = live.exited;
  const custom = live.kind === 'custom';
  // Read the output before the container is removed; secret values are masked in it.
  const secrets = (spec.customContainer?.env ?? []).map((e) => e.value).filter((v) => v.length >= 4);
  const logs = custom && container !== undefined ? redact(await containerLogTail(container), secrets) : '';
  await teardown(live, container).catch(() => {});
  forget();
  if (SandpoolError.is(error) && error.code === ErrorCode.ABORTED) return error;
  const base = reason ?? (error instanceof Error ? error.message : String(error));
  return new BackendError(`could not start a ${custom ? 'custom' : 'code-interpreter'} container session: ${base}${logs}`, {
    cause: error,
    ...(reason === undefined && SandpoolError.is(error) && error.code === ErrorCode.BACKEND_UNAVAILABLE
      ? { code: ErrorCode.BACKEND_UNAVAILABLE }
      : {}),
  });
}
