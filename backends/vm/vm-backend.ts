/**
 * `VMBackend`: every session is its own QEMU virtual machine (Debian kernel, busybox initramfs,
 * read-only squashfs root under a per-session copy-on-write overlay) running the sandpool agent,
 * reached only over a virtio-serial port. Sessions are restored from a warm snapshot when one is
 * available (about a second under TCG), and cold-booted otherwise.
 */

import { mkdirSync, rmSync } from 'node:fs';
import { basename } from 'node:path';

import type { AgentClient } from '../support/agent-client/index.js';
import type {
  Backend,
  BackendExecuteOptions,
  BackendCapabilities,
  BackendFiles,
  BackendLogEvent,
  BackendSession,
  Checkpoint,
  CheckpointOptions,
  CreateOptions,
  DestroyReason,
  ExecuteRequest,
  ExecutionOutcome,
  PrepareContext,
  Restored,
  RestoreOptions,
  SessionSpec,
} from '../../src/backend.js';
import { BackendError, SessionNotFoundError, toSandpoolError, UnsupportedError } from '../../src/errors.js';
import type { NetworkPolicy, SessionLimits } from '../../src/types.js';
import type { Accelerator } from './accelerator.js';
import type { MachineSettings } from './qemu-command.js';
import { createSessionDir, liveSessionUids, reapDeadOwners, sessionUid, type SessionState } from './run-dir.js';
import { machineSettings } from './machine-settings.js';
import { installAllowList, reapStaleAllowLists, removeAllowList, resolveAllowList } from './egress-allowlist.js';
import { assertReadableByOthers, VmEnvironment } from './vm-environment.js';
import type { LaunchedVm } from './vm-launcher.js';
import { startSessionVm, type StartedVm, type StartMode, type StartSource } from './session-start.js';
import { checkpointVm, type VmCheckpointMeta } from './vm-checkpoint.js';

export type { StartMode } from './session-start.js';

import { resolveVMOptions, type VMBackendOptions } from './vm-options.js';

interface VmSession extends BackendSession {
  readonly dir: string;
  readonly state: SessionState;
  readonly vm: LaunchedVm;
  readonly startedFrom: StartMode;
  readonly machine: MachineSettings;
  readonly diskMb: number;
  /** What a checkpoint of it records to be restorable: its RAM layout and disk chain. */
  readonly origin: StartedVm['origin'];
  /** The uid whose per-session allow-list chain must be removed with the session. */
  readonly allowListUid: number | undefined;
  destroyed: boolean;
}

/** How the last session was started, for benchmarks and diagnostics. */
export interface VmStartRecord {
  readonly sessionId: string;
  readonly mode: StartMode;
  /** Until Ready: the VM started or restored, its agent answered and the set-up cell ran. */
  readonly ms: number;
  /** Restores only: until the guest ran again from the snapshot (QEMU start + state load). */
  readonly restoreMs?: number | undefined;
  /** Why a snapshot restore was not used, when it was not. */
  readonly fallbackReason?: string | undefined;
}

const CAPABILITIES: BackendCapabilities = {
  containerTypes: ['PythonLTS', 'NodeLTS', 'Shell'],
  languages: ['python', 'javascript', 'shell'],
  isolation: 'microvm',
  inProcess: false,
  files: true,
  network: true,
  snapshots: true,
  httpForwarding: false,
  pause: 'machine',
  fork: true,
};

export class VMBackend implements Backend {
  readonly name = 'vm';
  readonly capabilities = CAPABILITIES;
  readonly files: BackendFiles;
  readonly #env: VmEnvironment;
  readonly #runDir: string;
  readonly #useSnapshots: boolean;
  readonly #sandbox: boolean;
  readonly #dropPrivileges: boolean;
  readonly #allowUnconfinedEgress: boolean;
  readonly #log: (event: BackendLogEvent) => void;
  readonly #sessions = new Map<string, VmSession>();
  #closed = false;
  #warnedTcg = false;
  #checkedPermissions = false;
  #lastStart: VmStartRecord | undefined;

  /** @throws {InvalidOptionsError} naming every invalid option */
  constructor(options: VMBackendOptions = {}) {
    const o = resolveVMOptions(options);
    this.#dropPrivileges = o.unprivilegedQemu && process.platform === 'linux' && process.getuid?.() === 0;
    this.#env = new VmEnvironment({
      qemu: o.qemu,
      qemuImg: o.qemuImg,
      cacheDir: o.cacheDir,
      imageManifest: o.imageManifest,
      accelerator: o.accelerator,
      probeTimeoutMs: o.probeTimeoutMs,
      readyTimeoutMs: o.readyTimeoutMs,
      sealSnapshotMemory: this.#dropPrivileges,
    });
    this.#runDir = o.runDir;
    this.#useSnapshots = o.snapshots;
    this.#sandbox = o.sandbox;
    this.#allowUnconfinedEgress = o.allowUnconfinedEgress;
    this.#log =
      o.onLog ??
      ((event) => {
        if (event.level === 'warn') process.stderr.write(`[sandpool vm] ${event.message}\n`);
      });
    this.files = this.#makeFiles();
  }

  /** The accelerator in use and why; resolves the environment (image, QEMU, probe) if needed. */
  async accelerator(): Promise<{ accelerator: Accelerator; reason: string }> {
    return (await this.#environment()).accelerator;
  }

  /** How the most recent session was started (snapshot restore or cold boot) and how long it took. */
  get lastStart(): VmStartRecord | undefined {
    return this.#lastStart;
  }

  /** Directory holding the per-session run directories. */
  get runDir(): string {
    return this.#runDir;
  }

  async prepare(context: PrepareContext): Promise<void> {
    this.#assertOpen();
    const reaped = reapDeadOwners(this.#runDir);
    if (reaped.removed.length > 0) {
      this.#log({
        level: 'info',
        message: `removed ${reaped.removed.length} VM(s) left by dead owners (killed QEMU: ${reaped.killedQemu.join(', ') || 'none'})`,
      });
    }
    if (this.#dropPrivileges) {
      const stale = await reapStaleAllowLists(liveSessionUids(this.#runDir));
      if (stale.length > 0)
        this.#log({ level: 'info', message: `removed ${stale.length} egress allow-list chain(s) of dead VM sessions` });
    }
    // Validates (and resolves, once) the allow-list before anything expensive.
    if (context.network.egress === 'EgressEnabled' && context.network.allow.length > 0)
      await resolveAllowList(context.network.allow);
    const machine = await this.#machine(context.limits, context.network);
    if (context.containerType === 'CustomContainer') {
      throw new UnsupportedError('the vm backend does not run custom containers yet (see docs/VM.md)');
    }
    if (this.#useSnapshots) {
      const started = Date.now();
      const snapshot = await this.#env.snapshot(machine, context.limits.diskMb, context.signal);
      const age = Date.now() - started;
      if (age > 1000)
        this.#log({ level: 'info', message: `built VM snapshot ${snapshot.key} in ${age} ms (boot ${snapshot.meta.bootMs} ms)` });
    }
  }

  async create(spec: SessionSpec, options: CreateOptions): Promise<BackendSession> {
    return await this.#createFrom(spec, options, { kind: 'fresh' });
  }

  /** Machine-level checkpoint (vm-checkpoint.ts): RAM and devices through migration, plus the disk overlay. */
  async checkpoint(session: BackendSession, options: CheckpointOptions): Promise<Checkpoint> {
    const vm = this.#session(session);
    const env = await this.#environment();
    const meta: VmCheckpointMeta = {
      format: 1,
      machine: vm.machine,
      diskMb: vm.diskMb,
      imageHash: env.image.hash,
      qemuVersion: env.qemuVersion,
      ...vm.origin,
    };
    const owner = this.#runAs(vm.dir);
    return await checkpointVm({ qmp: vm.vm.qmp, scratch: vm.vm.scratch, sessionDir: vm.dir, owner }, meta, options);
  }

  /** A new VM from a checkpoint: a resume, or with `fork` a copy whose RNGs are reseeded. */
  async restore(spec: SessionSpec, options: RestoreOptions): Promise<Restored> {
    const meta = options.checkpoint.meta as VmCheckpointMeta | null;
    if (options.checkpoint.level !== 'machine' || meta === null || typeof meta !== 'object') {
      throw new BackendError('this checkpoint was not written by the vm backend');
    }
    const session = await this.#createFrom(spec, options, { kind: 'checkpoint', dir: options.dir, meta, fork: options.fork });
    return { session, lost: [] };
  }

  async #createFrom(spec: SessionSpec, options: CreateOptions, source: StartSource): Promise<BackendSession> {
    this.#assertOpen();
    if (spec.containerType === 'CustomContainer') {
      throw new UnsupportedError('the vm backend does not run custom containers yet (see docs/VM.md)');
    }
    const allowed =
      spec.network.egress === 'EgressEnabled' && spec.network.allow.length > 0
        ? await resolveAllowList(spec.network.allow)
        : undefined;
    const machine = await this.#machine(spec.limits, spec.network);
    const { dir, state } = createSessionDir(this.#runDir, {
      ownerId: spec.ownerId,
      sessionId: spec.sessionId,
      poolName: spec.poolName,
    });
    const allowListUid = allowed === undefined ? undefined : sessionUid(basename(dir));
    const started = Date.now();
    try {
      // Before QEMU starts: the guest must never run with more egress than its allow-list.
      if (allowListUid !== undefined && allowed !== undefined) await installAllowList(allowListUid, allowed);
      const startContext = {
        env: this.#env,
        environment: await this.#environment(),
        useSnapshots: this.#useSnapshots,
        sandbox: this.#sandbox,
        runAs: this.#runAs(dir),
        log: this.#log,
      };
      const { vm, mode, fallbackReason, origin } = await startSessionVm(
        startContext,
        spec,
        machine,
        dir,
        state,
        options.signal,
        source,
      );
      this.#lastStart = { sessionId: spec.sessionId, mode, ms: Date.now() - started, restoreMs: vm.restoreMs, fallbackReason };
      const session: VmSession = {
        id: spec.sessionId,
        etag: `qemu-${vm.process.pid ?? 0}`,
        dir,
        state,
        vm,
        startedFrom: mode,
        machine,
        diskMb: spec.limits.diskMb,
        origin,
        allowListUid,
        destroyed: false,
      };
      if (this.#closed) {
        await this.#teardown(session);
        throw new BackendError('the vm backend was closed while the session was starting');
      }
      this.#sessions.set(spec.sessionId, session);
      void vm.process.exited.then((exit) => {
        if (session.destroyed) return;
        session.destroyed = true;
        this.#sessions.delete(session.id);
        session.vm.agent.close();
        session.vm.qmp.close();
        rmSync(dir, { recursive: true, force: true });
        if (allowListUid !== undefined) void removeAllowList(allowListUid);
        options.onExit({
          reason: 'failed',
          message: `the VM exited unexpectedly (${exit.signal ?? `code ${exit.code}`}): ${vm.process.diagnostics(500)}`,
          exitCode: exit.code ?? undefined,
        });
      });
      return { id: session.id, etag: session.etag };
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      if (allowListUid !== undefined) await removeAllowList(allowListUid);
      throw toSandpoolError(error, 'creating the VM session failed');
    }
  }

  async execute(session: BackendSession, request: ExecuteRequest, options?: BackendExecuteOptions): Promise<ExecutionOutcome> {
    const vm = this.#session(session);
    return await vm.vm.agent.execute(request, { signal: options?.signal, onOutput: options?.onOutput });
  }

  /** The guest's agent sets them in every kernel and command (agent/PROTOCOL.md `env.set`). */
  async setEnvironment(session: BackendSession, env: Readonly<Record<string, string>>): Promise<void> {
    await this.#session(session).vm.agent.setEnvironment(env);
  }

  async destroy(session: BackendSession, _options: { readonly reason: DestroyReason }): Promise<void> {
    const vm = this.#sessions.get(session.id);
    if (vm === undefined) return;
    this.#sessions.delete(session.id);
    await this.#teardown(vm);
  }

  async close(): Promise<void> {
    this.#closed = true;
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    await Promise.all(sessions.map((s) => this.#teardown(s)));
    await this.#env.close();
  }

  /** Live session ids and their QEMU pids (tests, diagnostics). */
  sessionsInfo(): { id: string; pid: number | undefined; dir: string; startedFrom: StartMode }[] {
    return [...this.#sessions.values()].map((s) => ({ id: s.id, pid: s.vm.process.pid, dir: s.dir, startedFrom: s.startedFrom }));
  }

  async #environment() {
    const env = await this.#env.environment();
    if (this.#dropPrivileges && !this.#checkedPermissions) {
      mkdirSync(`${this.#env.options.cacheDir}/vm`, { recursive: true });
      assertReadableByOthers([env.image.kernel, env.image.initrd, env.image.base, `${this.#env.options.cacheDir}/vm`]);
      this.#checkedPermissions = true;
    }
    if (env.accelerator.accelerator === 'tcg' && !this.#warnedTcg) {
      this.#warnedTcg = true;
      this.#log({
        level: 'warn',
        message: `running VMs under TCG (software emulation): expect ~50x slower guests. Reason: ${env.accelerator.reason}`,
      });
    }
    return env;
  }

  async #machine(limits: Readonly<SessionLimits>, network: Readonly<NetworkPolicy>): Promise<MachineSettings> {
    const env = await this.#environment();
    return await machineSettings(limits, network, {
      accelerator: env.accelerator.accelerator,
      dropPrivileges: this.#dropPrivileges,
      allowUnconfinedEgress: this.#allowUnconfinedEgress,
      log: this.#log,
    });
  }

  /** The unprivileged uid a session's QEMU runs as (see run-dir.ts), when the backend drops privileges. */
  #runAs(dir: string): { uid: number; gid: number } | undefined {
    return this.#dropPrivileges ? { uid: sessionUid(basename(dir)), gid: sessionUid(basename(dir)) } : undefined;
  }

  async #teardown(session: VmSession): Promise<void> {
    session.destroyed = true;
    session.vm.agent.close();
    session.vm.qmp.close();
    await session.vm.process.kill();
    if (session.allowListUid !== undefined) await removeAllowList(session.allowListUid);
    // The overlay (the session's whole writable disk, /mnt/data included) goes with the directory.
    rmSync(session.dir, { recursive: true, force: true });
  }

  #session(session: BackendSession): VmSession {
    const vm = this.#sessions.get(session.id);
    if (vm === undefined || vm.destroyed)
      throw new SessionNotFoundError(`vm session ${session.id} does not exist (destroyed or exited)`);
    return vm;
  }

  #assertOpen(): void {
    if (this.#closed) throw new BackendError('the vm backend is closed');
  }

  #makeFiles(): BackendFiles {
    const agent = (session: BackendSession): AgentClient => this.#session(session).vm.agent;
    return {
      upload: async (session, path, data, options) => await agent(session).upload(path, data, options),
      list: async (session, options) => await agent(session).list(options),
      stat: async (session, path) => await agent(session).stat(path),
      download: async (session, path, options) => await agent(session).download(path, options),
      delete: async (session, path) => await agent(session).delete(path),
    };
  }
}
