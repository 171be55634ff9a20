/**
 * Pause, resume and fork for container sessions, at the interpreter level: a full-memory
 * checkpoint of a container needs CRIU, and Debian's CRIU 3.17 fails `criu check` on the kernels
 * this project runs on, so the agent serialises the Python namespace (dill), the JavaScript
 * globals and the files under /mnt/data instead (agent/PROTOCOL.md, `checkpoint`). The bytes come
 * over a one-shot unix socket in the session's host directory (already bind-mounted at
 * /run/sandpool); resume loads them into a Ready container of the same pool.
 */

import { randomBytes } from 'node:crypto';
import { chownSync } from 'node:fs';
import { join } from 'node:path';

import { checkpointToFile, restoreFromFile, type StateSocket } from '../support/agent-client/index.js';
import type { Checkpoint, CheckpointOptions, Restored, RestoreOptions } from '../../src/backend.js';
import { BackendError, UnsupportedError } from '../../src/errors.js';
import { AGENT_DIR_IN_CONTAINER } from './container-spec.js';
import type { LiveSession } from './live-session.js';

/** Name of the state file inside a checkpoint directory. */
const STATE_FILE = 'state.bin';
/** Upper bound of one transfer; a 100 MB DataFrame takes about a second. */
const TRANSFER_TIMEOUT_MS = 600_000;

export interface ContainerCheckpointMeta {
  readonly format: 1;
  readonly files: number;
  readonly kernels: Readonly<Record<string, number>>;
}

function stateSocket(live: LiveSession, uid: number): StateSocket {
  const name = `state-${randomBytes(6).toString('hex')}.sock`;
  return {
    hostPath: join(live.hostDir, name),
    agentPath: `${AGENT_DIR_IN_CONTAINER}/${name}`,
    // The directory is root's (see create()); only this socket is handed to the agent's user.
    grant: (path) => chownSync(path, uid, uid),
  };
}

function agentOf(live: LiveSession) {
  if (live.kind === 'custom') {
    throw new UnsupportedError('custom-container sessions cannot be paused or forked (their state is the image’s own)');
  }
  if (live.agent === undefined || live.agent.closed) throw new BackendError(`session ${live.id} has no agent connection`);
  return live.agent;
}

export async function checkpointContainer(live: LiveSession, uid: number, options: CheckpointOptions): Promise<Checkpoint> {
  const agent = agentOf(live);
  const { report, bytes } = await checkpointToFile(agent, stateSocket(live, uid), join(options.dir, STATE_FILE), {
    maxBytes: options.maxBytes,
    timeoutMs: TRANSFER_TIMEOUT_MS,
    signal: options.signal,
  });
  const meta: ContainerCheckpointMeta = { format: 1, files: report.files, kernels: report.kernels };
  return { level: 'interpreter', bytes, lost: report.lost, meta: { ...meta } };
}

export async function restoreContainer(live: LiveSession, uid: number, options: RestoreOptions): Promise<Restored> {
  const agent = agentOf(live);
  const meta = options.checkpoint.meta as Partial<ContainerCheckpointMeta> | null;
  if (options.checkpoint.level !== 'interpreter' || meta?.format !== 1) {
    throw new BackendError('this checkpoint was not written by the container backend');
  }
  const report = await restoreFromFile(agent, stateSocket(live, uid), join(options.dir, STATE_FILE), {
    fork: options.fork,
    timeoutMs: TRANSFER_TIMEOUT_MS,
    signal: options.signal,
  });
  return { session: { id: live.id, etag: live.container.id }, lost: report.lost };
}
