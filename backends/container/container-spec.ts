/**
 * The Docker Engine API create body for one session: limits, hardening, network and labels. Kept
 * apart from the lifecycle code so the security-relevant settings can be read in one place.
 */

import type Docker from 'dockerode';

import type { SessionSpec } from '../../src/backend.js';
import { LABEL, ownerLabels } from './labels.js';
import { PAUSE_BINARY } from './zygote.js';

const MiB = 1024 * 1024;

/**
 * The writable tmpfs mounts besides /mnt/data, each with a size of its own. With a read-only root
 * Podman adds /run and /var/tmp itself with no size (half the host's RAM), so they are given here:
 * /var/tmp is world-writable like /tmp; /run holds only the agent's bind mount point.
 */
const SMALL_TMPFS: Readonly<Record<string, string>> = {
  '/tmp': 'rw,nosuid,nodev,size=64m,mode=1777',
  '/var/tmp': 'rw,nosuid,nodev,size=16m,mode=1777',
  '/run': 'rw,nosuid,nodev,noexec,size=1m,mode=0755',
};

/** Where the per-session host directory (holding the agent socket) appears inside the container. */
export const AGENT_DIR_IN_CONTAINER = '/run/sandpool';
export const AGENT_SOCKET_NAME = 'agent.sock';

export interface SpecContext {
  readonly backendName: string;
  readonly containerName: string;
  readonly image: string;
  /** OCI runtime name passed to the engine (runc, runsc, kata…). */
  readonly runtime: string | undefined;
  /** `none`, or the pool's egress network. */
  readonly networkMode: string;
  /** Uid/gid of code-interpreter sessions. */
  readonly uid: number;
  /** nofile and nproc ulimits (soft = hard). */
  readonly nofile: number;
  readonly nproc: number;
  /**
   * The engine is Podman: it spells "chown this tmpfs to the container user" `U` (Docker takes
   * tmpfs uid=/gid= options) and names its file log driver k8s-file (Docker: json-file).
   */
  readonly podman: boolean;
  /** Host directory bind-mounted at AGENT_DIR_IN_CONTAINER (code-interpreter sessions). */
  readonly hostDir?: string | undefined;
  /** Custom containers: mount the root filesystem read-only (most images write somewhere). */
  readonly customReadonlyRootfs: boolean;
  /** Custom containers: capabilities given back after dropping all. */
  readonly customCapAdd: readonly string[];
  /** Extra agent flags (e.g. a different preload list). */
  readonly agentArgs: readonly string[];
  /** `seccomp=<path>` (Podman) or `seccomp=<profile JSON>` (Docker): sandpool's profile, for every session. */
  readonly seccomp: string;
  /**
   * The agent comes from the zygote (zygote.ts): the container only runs a pause process (the
   * host's static catatonit, mounted read-only), which is also pid 1 and reaps orphans.
   */
  readonly zygote?: boolean | undefined;
}

function baseLabels(spec: SessionSpec, ctx: SpecContext, kind: 'code-interpreter' | 'custom'): Record<string, string> {
  return {
    [LABEL.managed]: ctx.backendName,
    [LABEL.pool]: spec.poolName,
    [LABEL.session]: spec.sessionId,
    [LABEL.owner]: spec.ownerId,
    [LABEL.kind]: kind,
    ...ownerLabels(),
  };
}

function resourceLimits(memoryMb: number, cpus: number, pids: number, ctx: SpecContext): Docker.HostConfig {
  return {
    Memory: memoryMb * MiB,
    // Equal to Memory: no swap, so a memory bomb meets the OOM killer instead of thrashing the host.
    MemorySwap: memoryMb * MiB,
    NanoCpus: Math.round(cpus * 1e9),
    PidsLimit: pids,
    // Explicit ulimits: podman's defaults exceed this kind of host's hard limits and runc fails.
    // nproc is per uid across the whole host (all sessions share one uid), so it is only a
    // backstop; the pids cgroup above is the real per-session cap.
    Ulimits: [
      { Name: 'nofile', Soft: ctx.nofile, Hard: ctx.nofile },
      { Name: 'nproc', Soft: ctx.nproc, Hard: ctx.nproc },
    ],
  };
}

/** Where a zygote session's pause process is mounted in its container, and its command line. */
export const PAUSE_IN_CONTAINER = '/run/sandpool-init';
export const PAUSE_COMMAND: readonly string[] = [PAUSE_IN_CONTAINER, '-P'];

/** The agent's command line in a code-interpreter session (the image's CMD, or the zygote's spawn). */
export function agentArgv(ctx: Pick<SpecContext, 'agentArgs'>): string[] {
  return ['--listen-unix', `${AGENT_DIR_IN_CONTAINER}/${AGENT_SOCKET_NAME}`, '--data-dir', '/mnt/data', ...ctx.agentArgs];
}

/** A Python/JavaScript/shell session: our image, the agent listening in the bind-mounted dir. */
export function codeInterpreterSpec(spec: SessionSpec, ctx: SpecContext): Docker.ContainerCreateOptions {
  const { limits } = spec;
  const binds = ctx.hostDir === undefined ? [] : [`${ctx.hostDir}:${AGENT_DIR_IN_CONTAINER}:rw`];
  if (ctx.zygote === true) binds.push(`${PAUSE_BINARY}:${PAUSE_IN_CONTAINER}:ro`);
  return {
    name: ctx.containerName,
    Image: ctx.image,
    ...(ctx.zygote === true ? { Entrypoint: [...PAUSE_COMMAND], Cmd: [] } : { Cmd: agentArgv(ctx) }),
    Labels: baseLabels(spec, ctx, 'code-interpreter'),
    User: `${ctx.uid}:${ctx.uid}`,
    WorkingDir: '/mnt/data',
    NetworkDisabled: ctx.networkMode === 'none',
    HostConfig: {
      ...resourceLimits(limits.memoryMb, limits.cpus, limits.pids, ctx),
      ...(ctx.runtime === undefined ? {} : { Runtime: ctx.runtime }),
      NetworkMode: ctx.networkMode,
      ReadonlyRootfs: true,
      // /mnt/data on tmpfs: its size option is a hard disk cap (the overlay writable layer has none
      // on ext4), and its pages count against the memory limit, so a disk bomb stays bounded. It can
      // never hold more than the memory limit (diskMb above memoryMb would be a promise the session
      // cannot keep); the agent also refuses an upload that would take what the code needs.
      Tmpfs: {
        ...SMALL_TMPFS,
        '/mnt/data': `rw,nosuid,nodev,size=${Math.min(limits.diskMb, limits.memoryMb)}m,mode=0755,${ctx.podman ? 'U' : `uid=${ctx.uid},gid=${ctx.uid}`}`,
      },
      Binds: binds,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges', ctx.seccomp],
      // A minimal init (catatonit/tini) as pid 1 reaps orphans of shell commands; a zygote session's
      // pause process is catatonit itself.
      Init: ctx.zygote !== true,
      // Nothing useful goes to the container's stdout (the agent talks over the socket); a chatty
      // or hostile session must not fill the engine's log storage.
      LogConfig: { Type: 'none', Config: {} },
      RestartPolicy: { Name: 'no' },
      AutoRemove: false,
    },
  };
}

/** A user's image serving HTTP on `targetPort`; reached through a forwarder in its network namespace. */
export function customContainerSpec(spec: SessionSpec, ctx: SpecContext): Docker.ContainerCreateOptions {
  const custom = spec.customContainer;
  if (custom === undefined) throw new Error('customContainerSpec without customContainer');
  const memoryMb = custom.memoryMb ?? spec.limits.memoryMb;
  const cpus = custom.cpu ?? spec.limits.cpus;
  return {
    name: ctx.containerName,
    Image: ctx.image,
    // Kubernetes/Azure semantics: command replaces the image's ENTRYPOINT, args its CMD.
    ...(custom.command === undefined ? {} : { Entrypoint: [...custom.command] }),
    ...(custom.args === undefined ? {} : { Cmd: [...custom.args] }),
    // Secret values are in here: this object is never logged.
    Env: custom.env.map((e) => `${e.name}=${e.value}`),
    Labels: baseLabels(spec, ctx, 'custom'),
    NetworkDisabled: ctx.networkMode === 'none',
    HostConfig: {
      ...resourceLimits(memoryMb, cpus, spec.limits.pids, ctx),
      ...(ctx.runtime === undefined ? {} : { Runtime: ctx.runtime }),
      NetworkMode: ctx.networkMode,
      ReadonlyRootfs: ctx.customReadonlyRootfs,
      ...(ctx.customReadonlyRootfs ? { Tmpfs: { ...SMALL_TMPFS } } : {}),
      CapDrop: ['ALL'],
      ...(ctx.customCapAdd.length > 0 ? { CapAdd: [...ctx.customCapAdd] } : {}),
      SecurityOpt: ['no-new-privileges', ctx.seccomp],
      Init: true,
      // Logs help to explain a container that dies before it is Ready; capped so it cannot fill the
      // disk. Podman's file driver is k8s-file, Docker's json-file; both take max-size.
      LogConfig: { Type: ctx.podman ? 'k8s-file' : 'json-file', Config: { 'max-size': '1m' } },
      RestartPolicy: { Name: 'no' },
      AutoRemove: false,
    },
  };
}
