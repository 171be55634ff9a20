/**
 * How a session's VM comes to life: restored from the warm snapshot (the normal case), cold-booted
 * (no snapshot, or its restore failed: logged, with the reason in `fallbackReason`), or restored
 * from a session's own checkpoint (a resume or a fork; vm-checkpoint.ts), which never falls back:
 * a checkpoint that cannot be restored fails that session clearly.
 */

import { join } from 'node:path';

import type { BackendLogEvent, SessionSpec } from '../../src/backend.js';
import { BackendError } from '../../src/errors.js';
import { pidsLimitCode, RESEED_CODE } from './guest-setup.js';
import type { MachineSettings } from './qemu-command.js';
import { writeState, type SessionState } from './run-dir.js';
import { loadSnapshot } from './snapshot.js';
import { checkpointMismatch, DISK_FILE, MEMORY_FILE, type VmCheckpointMeta } from './vm-checkpoint.js';
import type { Environment, VmEnvironment } from './vm-environment.js';
import { launchVm, type LaunchedVm } from './vm-launcher.js';

/** How a session was started: from the warm snapshot, by a cold boot, or from a session's checkpoint. */
export type StartMode = 'snapshot' | 'boot' | 'checkpoint';

/** Where a session's machine state comes from. */
export type StartSource =
  | { readonly kind: 'fresh' }
  | { readonly kind: 'checkpoint'; readonly dir: string; readonly meta: VmCheckpointMeta; readonly fork: boolean };

export interface StartContext {
  readonly env: VmEnvironment;
  readonly environment: Environment;
  readonly useSnapshots: boolean;
  readonly sandbox: boolean;
  readonly runAs: { readonly uid: number; readonly gid: number } | undefined;
  readonly log: (event: BackendLogEvent) => void;
}

export interface StartedVm {
  readonly vm: LaunchedVm;
  readonly mode: StartMode;
  readonly fallbackReason: string | undefined;
  /** What a later checkpoint of this VM must record to be restorable (its RAM layout, its disk chain). */
  readonly origin: Pick<VmCheckpointMeta, 'ram' | 'snapshot'>;
}

/** Runs the hidden per-session set-up cell; a guest that fails it is killed, never handed out. */
async function afterStart(vm: LaunchedVm, code: string): Promise<void> {
  const outcome = await vm.agent.execute({ language: 'python', code, timeoutMs: 30_000, outputMaxBytes: 4096 });
  if (outcome.status !== 'Succeeded') {
    vm.agent.close();
    vm.qmp.close();
    await vm.process.kill();
    throw new BackendError(`the guest failed its set-up cell (RNG reseed, pids limit): ${outcome.stderr.slice(0, 500)}`);
  }
}

async function fromCheckpoint(
  ctx: StartContext,
  base: Parameters<typeof launchVm>[0],
  spec: SessionSpec,
  source: Extract<StartSource, { kind: 'checkpoint' }>,
): Promise<StartedVm> {
  const { meta } = source;
  const current = {
    machine: base.machine,
    diskMb: spec.limits.diskMb,
    imageHash: ctx.environment.image.hash,
    qemuVersion: ctx.environment.qemuVersion,
  };
  const warm = meta.snapshot === undefined ? undefined : loadSnapshot(ctx.env.options.cacheDir, meta.snapshot.key);
  const reason =
    checkpointMismatch(meta, current) ??
    (meta.snapshot !== undefined && warm?.meta.createdAt !== meta.snapshot.createdAt
      ? 'the warm snapshot its disk is based on was rebuilt or removed since'
      : undefined);
  if (reason !== undefined) throw new BackendError(`this checkpoint cannot be restored: ${reason}`);
  const vm = await launchVm({
    ...base,
    resume: { state: join(source.dir, MEMORY_FILE), disk: join(source.dir, DISK_FILE), ram: meta.ram },
  });
  // vmgenid gave the guest kernel a new generation id; a fork reseeds the interpreters too.
  if (source.fork) {
    await vm.agent.request({ op: 'reseed' }, 'reseed the forked session', 60_000).catch(async (error: unknown) => {
      vm.agent.close();
      vm.qmp.close();
      await vm.process.kill();
      throw error;
    });
  }
  return { vm, mode: 'checkpoint', fallbackReason: undefined, origin: { ram: meta.ram, snapshot: meta.snapshot } };
}

export async function startSessionVm(
  ctx: StartContext,
  spec: SessionSpec,
  machine: MachineSettings,
  dir: string,
  state: SessionState,
  signal: AbortSignal | undefined,
  source: StartSource,
): Promise<StartedVm> {
  const { env, environment } = ctx;
  const base = {
    qemu: env.options.qemu,
    qemuImg: env.options.qemuImg,
    image: environment.image,
    machine,
    dir,
    sandbox: ctx.sandbox,
    readyTimeoutMs: env.options.readyTimeoutMs,
    signal,
    runAs: ctx.runAs,
    backing: { path: '', format: 'raw' as const },
    onSpawn: (pid: number) => {
      state.qemuPid = pid;
      writeState(dir, state);
    },
  };
  if (source.kind === 'checkpoint') return await fromCheckpoint(ctx, base, spec, source);
  let fallbackReason: string | undefined;
  if (ctx.useSnapshots) {
    try {
      const snapshot = await env.snapshot(machine, spec.limits.diskMb, signal);
      try {
        const memory = await env.snapshotMemory(snapshot);
        const vm = await launchVm({
          ...base,
          backing: { path: snapshot.disk, format: 'qcow2' },
          restore: { state: snapshot.state, memory },
        });
        await afterStart(vm, RESEED_CODE + pidsLimitCode(spec.limits.pids));
        const origin = { ram: 'ram0' as const, snapshot: { key: snapshot.key, createdAt: snapshot.meta.createdAt } };
        return { vm, mode: 'snapshot', fallbackReason, origin };
      } catch (error) {
        env.invalidateSnapshot(snapshot.key);
        throw error;
      }
    } catch (error) {
      if (signal?.aborted) throw error;
      fallbackReason = (error as Error).message;
      ctx.log({
        level: 'warn',
        sessionId: spec.sessionId,
        message: `snapshot restore failed, cold-booting instead: ${fallbackReason}`,
      });
    }
  }
  const template = await env.scratchTemplate(spec.limits.diskMb);
  const vm = await launchVm({ ...base, backing: { path: template, format: 'raw' } });
  await afterStart(vm, pidsLimitCode(spec.limits.pids));
  return { vm, mode: 'boot', fallbackReason, origin: { ram: 'default', snapshot: undefined } };
}
