/**
 * Connecting to the agent inside a code-interpreter container: its unix socket appears in the
 * bind-mounted host directory once the agent listens; we retry until then (or until the container
 * stops, or the deadline), then wait for the agent's `ready` (kernel up, libraries imported).
 */

import { connect, type Socket } from 'node:net';

import { AgentClient } from '../support/agent-client/index.js';
import { AbortedError, BackendError, type SandpoolError } from '../../src/errors.js';

export interface AgentConnectOptions {
  readonly socketPath: string;
  readonly deadline: number;
  /** Exit message once the container stopped, else undefined. */
  readonly stopped: () => string | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onClose: (error: SandpoolError) => void;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function tryConnect(path: string): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(undefined);
    });
  });
}

export function containerExitMessage(code: number): string {
  if (code === 137) return 'the container was killed (exit code 137: SIGKILL, often the memory limit)';
  return `the container exited with code ${code}`;
}

export async function connectAgent(options: AgentConnectOptions): Promise<AgentClient> {
  let socket: Socket | undefined;
  for (let delay = 2; socket === undefined; delay = Math.min(delay * 2, 25)) {
    if (options.signal?.aborted) throw new AbortedError('session creation was aborted');
    const stopped = options.stopped();
    if (stopped !== undefined) throw new BackendError(`${stopped} before its agent was ready`);
    if (Date.now() > options.deadline) throw new BackendError('the session agent did not start before the create timeout');
    socket = await tryConnect(options.socketPath);
    if (socket === undefined) await sleep(delay);
  }
  socket.setNoDelay(true);
  const client = new AgentClient(socket, { onClose: options.onClose });
  const timeout = AbortSignal.timeout(Math.max(1, options.deadline - Date.now()));
  const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout]);
  try {
    const ready = await client.ready(signal);
    if (ready.protocol !== 1) throw new BackendError(`unsupported agent protocol ${ready.protocol}`);
    return client;
  } catch (error) {
    client.close();
    if (timeout.aborted && !options.signal?.aborted) {
      throw new BackendError('the session agent was not ready before the create timeout', { cause: error });
    }
    throw error;
  }
}
