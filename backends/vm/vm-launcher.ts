/**
 * Starts one VM (cold boot or restore from a snapshot) and connects to it: QMP for control, the
 * virtio-serial unix socket for the agent. Resolves once the agent answered `hello` (its Python
 * kernel is up, preloads imported). On any failure everything started is torn down before the
 * rejection, which carries the tail of the guest console.
 */

import { execFile } from 'node:child_process';
import { chownSync, closeSync, copyFileSync, existsSync, openSync, renameSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { promisify } from 'node:util';

import { AgentClient } from '../support/agent-client/index.js';
import type { AgentReady } from '../support/agent-client/index.js';
import { AbortedError, BackendError } from '../../src/errors.js';
import { loadState } from './migration.js';
import { agentSocketPath, qemuArgs, qmpSocketPath, type GuestImage, type MachineSettings } from './qemu-command.js';
import { QemuProcess } from './qemu-process.js';
import { QmpClient } from './qmp-client.js';
import { anonymousMemoryArgs, memoryBackendArgs, type SnapshotMemory } from './snapshot-memory.js';

const execFileAsync = promisify(execFile);

export interface LaunchOptions {
  readonly qemu: string;
  readonly qemuImg: string;
  readonly image: GuestImage;
  readonly machine: MachineSettings;
  readonly dir: string;
  /** Disk the overlay is backed by, and its format. */
  readonly backing: { readonly path: string; readonly format: 'raw' | 'qcow2' };
  /**
   * Restore instead of booting: the device state to load and the snapshot RAM to map
   * copy-on-write. Absent: cold boot.
   */
  readonly restore?: { readonly state: string; readonly memory: SnapshotMemory } | undefined;
  /**
   * Restore a session's checkpoint instead (vm-checkpoint.ts): a stream holding the whole machine,
   * RAM included, laid out as the checkpointed VM had it (`ram0` for a snapshot-restored VM, QEMU's
   * default RAM for a cold-booted one), and a copy of its disk overlay (`backing` is then unused).
   */
  readonly resume?: { readonly state: string; readonly disk: string; readonly ram: 'ram0' | 'default' } | undefined;
  /** Building a snapshot: keep the guest's RAM in this file (shared mapping) so it outlives QEMU. */
  readonly memory?: { readonly saveTo: string } | undefined;
  readonly sandbox: boolean;
  readonly readyTimeoutMs: number;
  readonly signal?: AbortSignal | undefined;
  /**
   * Run QEMU as this unprivileged user (the session directory and overlay are handed to it): a
   * guest that escapes into QEMU lands in a process that owns nothing but its own session.
   */
  readonly runAs?: { readonly uid: number; readonly gid: number } | undefined;
  /** Called for each started QEMU, before waiting for it (to record its pid for crash recovery). */
  readonly onSpawn?: ((pid: number) => void) | undefined;
}

export interface LaunchedVm {
  readonly process: QemuProcess;
  readonly qmp: QmpClient;
  readonly agent: AgentClient;
  readonly ready: AgentReady;
  readonly scratch: string;
  /** Milliseconds from spawn to agent ready. */
  readonly startupMs: number;
  /** Restores: milliseconds from spawn until the loaded guest was running again. */
  readonly restoreMs?: number | undefined;
}

/** Where the inherited descriptors land in QEMU: the device state on 3, the snapshot memfd on 4. */
const STATE_FD = 3;
const MEMORY_FD = 4;

export async function createOverlay(qemuImg: string, backing: LaunchOptions['backing'], path: string): Promise<void> {
  try {
    await execFileAsync(qemuImg, ['create', '-q', '-f', 'qcow2', '-F', backing.format, '-b', backing.path, path]);
  } catch (error) {
    throw new BackendError(`cannot create the session disk overlay: ${(error as Error).message}`, { cause: error });
  }
}

/** One empty overlay per backing file, made with qemu-img once and copied for every session. */
const overlayTemplates = new Map<string, Promise<string | undefined>>();

/**
 * A fresh overlay at `path` over `backing`. An empty qcow2 overlay is the same bytes for every
 * session (a header naming the backing file, empty tables), so it is copied from a template next to
 * the backing file instead of running qemu-img per session (a process start: tens of ms). Where the
 * template cannot be written (a read-only cache) each session runs qemu-img as before.
 */
async function freshOverlay(qemuImg: string, backing: LaunchOptions['backing'], path: string): Promise<void> {
  const key = `${backing.format}:${backing.path}`;
  let template = overlayTemplates.get(key);
  if (template === undefined) {
    const target = `${backing.path}.overlay.qcow2`;
    template = (async () => {
      if (existsSync(target)) return target;
      const tmp = `${target}.tmp-${process.pid}-${Date.now()}`;
      try {
        await createOverlay(qemuImg, backing, tmp);
        renameSync(tmp, target);
        return target;
      } catch {
        rmSync(tmp, { force: true });
        return undefined;
      }
    })();
    overlayTemplates.set(key, template);
  }
  const ready = await template;
  if (ready === undefined) {
    await createOverlay(qemuImg, backing, path);
    return;
  }
  try {
    copyFileSync(ready, path);
  } catch (error) {
    // The template went with a rebuilt snapshot: make it again next time, qemu-img this time.
    overlayTemplates.delete(key);
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') await createOverlay(qemuImg, backing, path);
    else throw new BackendError(`cannot create the session disk overlay: ${(error as Error).message}`, { cause: error });
  }
}

async function delay(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Connect to a unix socket QEMU is about to create; retries until it exists or QEMU exits. */
async function connectWhenListening(path: string, qemu: QemuProcess, deadline: number): Promise<Socket> {
  let attempt = 0;
  for (;;) {
    if (qemu.hasExited) throw new BackendError(`QEMU exited during startup:\n${qemu.diagnostics()}`);
    if (Date.now() > deadline) throw new BackendError(`QEMU did not open ${path} in time`);
    if (existsSync(path)) {
      try {
        return await new Promise<Socket>((resolve, reject) => {
          const socket = connect(path);
          socket.once('connect', () => {
            socket.off('error', reject);
            resolve(socket);
          });
          socket.once('error', reject);
        });
      } catch {
        // Not listening yet.
      }
    }
    // QEMU creates its sockets within tens of milliseconds: poll briskly at first.
    attempt += 1;
    await delay(Math.min(20, 2 * attempt));
  }
}

export async function launchVm(options: LaunchOptions): Promise<LaunchedVm> {
  const started = Date.now();
  const deadline = started + options.readyTimeoutMs;
  if (options.signal?.aborted) throw new AbortedError('VM start aborted');
  const scratch = `${options.dir}/disk.qcow2`;
  const { restore, resume } = options;
  if (resume === undefined) await freshOverlay(options.qemuImg, options.backing, scratch);
  else {
    try {
      copyFileSync(resume.disk, scratch);
    } catch (error) {
      throw new BackendError(`cannot read the checkpoint's disk: ${(error as Error).message}`, { cause: error });
    }
  }
  if (options.runAs !== undefined) {
    chownSync(options.dir, options.runAs.uid, options.runAs.gid);
    chownSync(scratch, options.runAs.uid, options.runAs.gid);
  }

  let stateFd: number | undefined;
  const statePath = restore?.state ?? resume?.state;
  if (statePath !== undefined) {
    try {
      stateFd = openSync(statePath, 'r');
    } catch (error) {
      throw new BackendError(`cannot open the ${resume ? 'checkpoint' : 'snapshot'}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
  const memoryArgs =
    restore !== undefined
      ? restore.memory.restoreArgs(options.machine.memoryMb, MEMORY_FD)
      : resume !== undefined
        ? resume.ram === 'ram0'
          ? anonymousMemoryArgs(options.machine.memoryMb)
          : []
        : options.memory !== undefined
          ? memoryBackendArgs(options.machine.memoryMb, options.memory.saveTo, true)
          : [];
  const args = [
    ...qemuArgs({ image: options.image, machine: options.machine, dir: options.dir, scratch, sandbox: options.sandbox }),
    ...memoryArgs,
    // Loaded over QMP once x-ignore-shared is set (it changes the stream's format).
    ...(stateFd === undefined ? [] : ['-incoming', 'defer']),
  ];
  const memoryFd = restore?.memory.hostFd;
  const qemu = new QemuProcess(options.qemu, args, {
    inheritFds: stateFd === undefined ? [] : memoryFd === undefined ? [stateFd] : [stateFd, memoryFd],
    runAs: options.runAs,
  });
  if (stateFd !== undefined) closeSync(stateFd); // the child has its own copy
  if (qemu.pid !== undefined) options.onSpawn?.(qemu.pid);

  let qmp: QmpClient | undefined;
  let agent: AgentClient | undefined;
  const onAbort = (): void => {
    void qemu.kill();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const qmpSocket = qmpSocketPath(options.dir);
    await connectWhenListening(qmpSocket, qemu, deadline).then((s) => s.destroy());
    qmp = await QmpClient.connect(qmpSocket);
    let restoreMs: number | undefined;
    if (stateFd !== undefined) {
      // A warm snapshot's stream leaves the RAM in its file; a checkpoint's carries all of it.
      await loadState(qmp, `fd:${STATE_FD}`, { ignoreShared: restore !== undefined, deadline });
      restoreMs = Date.now() - started;
    }
    const socket = await connectWhenListening(agentSocketPath(options.dir), qemu, deadline);
    agent = new AgentClient(socket, { requestTimeoutMs: 60_000 });
    const remaining = Math.max(1, deadline - Date.now());
    const timeout = AbortSignal.timeout(remaining);
    const signal = options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]);
    const exited = qemu.exited.then(() => {
      throw new BackendError(`the VM exited before its agent was ready:\n${qemu.diagnostics()}`);
    });
    const ready = await Promise.race([agent.ready(signal), exited]).catch((error: unknown) => {
      if (options.signal?.aborted) throw new AbortedError('VM start aborted');
      if (timeout.aborted) {
        throw new BackendError(`the guest agent was not ready within ${options.readyTimeoutMs} ms:\n${qemu.diagnostics()}`);
      }
      throw error;
    });
    return { process: qemu, qmp, agent, ready, scratch, startupMs: Date.now() - started, restoreMs };
  } catch (error) {
    agent?.close();
    qmp?.close();
    // A socket error usually means QEMU died: give it a moment to exit so the reason names it.
    const exitedByItself = await Promise.race([qemu.exited.then(() => true), delay(300).then(() => false)]);
    await qemu.kill();
    if (error instanceof AbortedError) throw error;
    const message = (error as Error).message;
    if (message.includes(qemu.diagnostics(200)) && qemu.diagnostics(200).length > 0) throw error;
    throw new BackendError(`VM start failed: ${message}${exitedByItself ? ' (QEMU exited)' : ''}\n${qemu.diagnostics()}`, {
      cause: error,
    });
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}
