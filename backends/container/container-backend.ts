/**
 * `ContainerBackend`: sessions as OCI containers driven through the Docker Engine API (dockerode),
 * served by Docker or by Podman's compatible service.
 *
 * - Code-interpreter sessions (PythonLTS, NodeLTS, Shell) run the sandpool agent in our image; the
 *   host reaches it over a unix socket in a per-session host directory bind-mounted into the
 *   container (one connection, kept open: no `exec` per execution).
 * - Custom-container sessions run the user's image; `fetch`/`connect` reach its target port
 *   through a forwarder in the container's network namespace (port-forwarder.ts).
 */

import { randomBytes } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';

import type Docker from 'dockerode';

import type { AgentClient } from '../support/agent-client/index.js';
import type {
  Backend,
  BackendExecuteOptions,
  BackendCapabilities,
  BackendFiles,
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
import { AbortedError, BackendError, SessionNotFoundError, UnsupportedError } from '../../src/errors.js';
import { agentArgv, codeInterpreterSpec, customContainerSpec, PAUSE_COMMAND, type SpecContext } from './container-spec.js';
import { connectEngine, type EngineConnection } from './engine-connection.js';
import { ensureEgressNetwork, removeEgressNetwork } from './egress-network.js';
import { forwardFetch } from './http-forward.js';
import { assertImageReference, ensureImage, checkRuntime } from './image-check.js';
import { InstanceDir } from './instance-dir.js';
import { reapDeadOwners } from './leftovers.js';
import { resolveContainerOptions, type ContainerBackendOptions, type ResolvedContainerOptions } from './options.js';
import { executeOnAgent, forwarderSocket, teardown, watchExit, type LiveSession } from './live-session.js';
import { connectForwarder, forwarderAvailable } from './port-forwarder.js';
import { checkpointContainer, restoreContainer } from './session-state.js';
import type { ProbeTarget } from './readiness.js';
import { failedCreate, waitForSession } from './session-start.js';
import { preloadOf, ZygoteSupervisor } from './zygote.js';
import { seccompProfileJson } from './seccomp/index.js';

const SESSION_ID = /^[a-z0-9-]{1,64}$/;

export class ContainerBackend implements Backend {
  readonly name = 'container';
  readonly capabilities: BackendCapabilities = {
    containerTypes: ['PythonLTS', 'NodeLTS', 'Shell', 'CustomContainer'],
    languages: ['python', 'javascript', 'shell'],
    isolation: 'container',
    inProcess: false,
    files: true,
    network: true,
    snapshots: false,
    httpForwarding: true,
    pause: 'interpreter',
    fork: true,
  };
  readonly files: BackendFiles;
  readonly options: ResolvedContainerOptions;

  #connection: Promise<EngineConnection> | undefined;
  #connected: EngineConnection | undefined;
  readonly #sessions = new Map<string, LiveSession>();
  readonly #networks = new Map<string, Promise<string>>();
  /** Creates in flight: close() waits for them, so none can finish after it and leak. */
  readonly #creating = new Set<Promise<unknown>>();
  #closed = false;
  readonly #log: (message: string) => void;
  /** The host directory this instance owns (its sessions' sockets, its seccomp file); nothing else is removed on close(). */
  readonly #dir: InstanceDir;
  readonly #seccompJson: string;
  readonly #zygote: ZygoteSupervisor;
  #runtimeName: string | undefined;

  constructor(options: ContainerBackendOptions = {}) {
    this.options = resolveContainerOptions(options);
    const onLog = this.options.onLog;
    this.#log = onLog === undefined ? () => {} : (message) => onLog({ level: 'info', message });
    this.#dir = new InstanceDir(this.options.runDir);
    this.#seccompJson = seccompProfileJson(this.options.seccompProfile);
    const { image, zygote: enabled, agentArgs } = this.options;
    this.#zygote = new ZygoteSupervisor({ image, enabled, preload: preloadOf(agentArgs), log: this.#log });
    this.files = {
      upload: async (s, path, data, o) => await this.#agentOf(s).upload(path, data, o),
      list: async (s, o) => await this.#agentOf(s).list(o),
      stat: async (s, path) => await this.#agentOf(s).stat(path),
      download: async (s, path, o) => await this.#agentOf(s).download(path, o),
      delete: async (s, path) => await this.#agentOf(s).delete(path),
    };
  }

  /** Which engine endpoint this backend uses and how it was found (undefined before the first use). */
  get connection(): string | undefined {
    return this.#connected?.description;
  }

  /** The engine connection, established on first use. */
  async engine(): Promise<Docker> {
    if (this.#closed) throw new BackendError('the container backend is closed');
    this.#connection ??= connectEngine({
      socketPath: this.options.socketPath,
      runDir: this.options.runDir,
      startPodman: this.options.startPodman,
      log: this.#log,
    }).then(
      (c) => {
        this.#connected = c;
        this.#log(`container engine: ${c.description}`);
        return c;
      },
      (error: unknown) => {
        this.#connection = undefined;
        throw error;
      },
    );
    return (await this.#connection).docker;
  }

  async prepare(context: PrepareContext): Promise<void> {
    if (context.customContainer !== undefined) assertImageReference(context.customContainer.image);
    const docker = await this.engine();
    await checkRuntime(docker, this.options.runtime, this.#connected?.socketPath !== undefined);
    if (context.containerType === 'CustomContainer') {
      const template = context.customContainer;
      if (template === undefined) throw new BackendError('CustomContainer pools need a customContainerTemplate');
      const missing = forwarderAvailable();
      if (missing !== undefined) throw new BackendError(`custom containers need a port forwarder: ${missing}`);
      await ensureImage(docker, template.image, { pull: this.options.pullImages, log: this.#log, signal: context.signal });
    } else {
      await ensureImage(docker, this.options.image, { pull: false, log: this.#log, signal: context.signal });
      // Started now, awaited by the first create: its imports overlap with the initial fill's wait.
      void this.#zygoteFor().catch(() => undefined);
    }
    const reaped = await reapDeadOwners(docker, this.name, join(this.options.runDir, 'sessions'));
    if (reaped.containers + reaped.directories + reaped.networks > 0) {
      this.#log(
        `removed leftovers of dead owners: ${reaped.containers} containers, ${reaped.directories} directories, ${reaped.networks} egress networks or chains`,
      );
    }
    if (context.network.egress === 'EgressEnabled') {
      const image = context.customContainer?.image ?? this.options.image;
      await this.#network(docker, context.poolName, context.network.allow, image);
    }
  }

  async create(spec: SessionSpec, options: CreateOptions): Promise<BackendSession> {
    if (this.#closed) throw new BackendError('the container backend is closed');
    const creating = this.#create(spec, options);
    this.#creating.add(creating);
    try {
      const session = await creating;
      if (this.#closed) {
        await this.destroy(session, { reason: 'poolClosed' });
        throw new BackendError('the container backend was closed while the session was being created');
      }
      return session;
    } finally {
      this.#creating.delete(creating);
    }
  }

  async #create(spec: SessionSpec, options: CreateOptions): Promise<BackendSession> {
    if (!SESSION_ID.test(spec.sessionId)) throw new BackendError(`invalid session id ${JSON.stringify(spec.sessionId)}`);
    if (this.#sessions.has(spec.sessionId)) throw new BackendError(`session ${spec.sessionId} already exists`);
    const docker = await this.engine();
    const custom = spec.containerType === 'CustomContainer';
    if (custom && spec.customContainer === undefined)
      throw new BackendError('CustomContainer sessions need a customContainer template');
    if (custom) assertImageReference(spec.customContainer!.image);
    const zygote = custom ? undefined : await this.#zygoteFor();
    const networkMode =
      spec.network.egress === 'EgressEnabled'
        ? await this.#network(
            docker,
            spec.poolName,
            spec.network.allow,
            custom ? spec.customContainer!.image : this.options.image,
          )
        : 'none';
    const suffix = randomBytes(4).toString('hex');
    // The agent (options.uid in the container, the same uid on the host without a user namespace)
    // creates its socket in the session's dir; the parent dirs stay root-only, so no other host user reaches it.
    const hostDir = this.#dir.sessionDir(custom ? undefined : this.options.uid);
    const ctx: SpecContext = {
      backendName: this.name,
      containerName: `sandpool-${spec.poolName}-${spec.sessionId}-${suffix}`.slice(0, 120),
      image: custom ? (spec.customContainer?.image ?? '') : this.options.image,
      runtime: this.options.runtime,
      networkMode,
      podman: this.#connected?.podman ?? true,
      uid: this.options.uid,
      nofile: this.options.nofile,
      nproc: this.options.nproc,
      hostDir: custom ? undefined : hostDir,
      customReadonlyRootfs: this.options.customReadonlyRootfs,
      customCapAdd: this.options.customCapAdd,
      agentArgs: this.options.agentArgs,
      seccomp: this.#seccompOption(this.#connected?.podman ?? true),
      zygote: zygote !== undefined,
    };
    let container: Docker.Container | undefined;
    const stop = new AbortController();
    const live: LiveSession = {
      id: spec.sessionId,
      kind: custom ? 'custom' : 'code-interpreter',
      container: undefined as unknown as Docker.Container,
      hostDir,
      stop,
      forwarders: new Map(),
      pid: 0,
      targetPort: spec.customContainer?.targetPort ?? 0,
      onExit: options.onExit,
      ready: false,
      exitReported: false,
    };
    const deadline = Date.now() + this.options.createTimeoutMs;
    try {
      container = await docker.createContainer(custom ? customContainerSpec(spec, ctx) : codeInterpreterSpec(spec, ctx));
      (live as { container: Docker.Container }).container = container;
      this.#sessions.set(spec.sessionId, live);
      if (options.signal?.aborted) throw new AbortedError('session creation was aborted');
      await container.start();
      watchExit(live);
      const inspected = await container.inspect();
      live.pid = inspected.State.Pid;
      // A failed spawn turns the zygote off: the pool's retry starts the classic way.
      await zygote?.spawnAgent({ id: container.id, pid: live.pid }, PAUSE_COMMAND, agentArgv(ctx)).catch((error: unknown) => {
        this.#zygote.disable(`a spawn failed: ${(error as Error).message}`);
        throw error;
      });
      await waitForSession(live, spec, { deadline, signal: options.signal, probe: this.#probeTarget(live) });
      // An exit seen before this point was not reported (create had not resolved): fail instead.
      if (live.exited !== undefined) throw new BackendError(live.exited);
      live.ready = true;
      return { id: spec.sessionId, etag: container.id };
    } catch (error) {
      throw await failedCreate(error, live, container, spec, () => this.#sessions.delete(spec.sessionId));
    }
  }

  async execute(session: BackendSession, request: ExecuteRequest, options?: BackendExecuteOptions): Promise<ExecutionOutcome> {
    const live = this.#live(session);
    if (live.kind === 'custom') throw new UnsupportedError('custom-container sessions do not run code; use fetch()');
    const agent = this.#agentOf(session);
    return await executeOnAgent(live, agent, request, options);
  }

  /** Code-interpreter sessions: the agent sets them in every kernel and command (agent/PROTOCOL.md `env.set`). */
  async setEnvironment(session: BackendSession, env: Readonly<Record<string, string>>): Promise<void> {
    const live = this.#live(session);
    if (live.kind === 'custom') {
      throw new UnsupportedError('custom-container sessions take their environment from the template, not at acquire');
    }
    await this.#agentOf(session).setEnvironment(env);
  }

  async destroy(session: BackendSession, _options: { readonly reason: DestroyReason }): Promise<void> {
    const live = this.#sessions.get(session.id);
    if (live === undefined) return;
    live.destroying ??= teardown(live, live.container).finally(() => this.#sessions.delete(session.id));
    await live.destroying;
  }

  /** Interpreter-level checkpoint (session-state.ts); the container keeps running either way. */
  async checkpoint(session: BackendSession, options: CheckpointOptions): Promise<Checkpoint> {
    return await checkpointContainer(this.#live(session), this.options.uid, options);
  }

  /** Loads a checkpoint into `options.into`, a Ready session of the pool. */
  async restore(_spec: SessionSpec, options: RestoreOptions): Promise<Restored> {
    if (options.into === undefined) throw new BackendError('container restores load into a Ready session (options.into)');
    return await restoreContainer(this.#live(options.into), this.options.uid, options);
  }

  async fetch(
    session: BackendSession,
    request: Request,
    options?: { readonly signal?: AbortSignal | undefined },
  ): Promise<Response> {
    const live = this.#customOf(session);
    const socketPath = await forwarderSocket(live, live.targetPort);
    return await forwardFetch(request, {
      socketPath,
      agent: live.httpAgent ?? new HttpAgent({ keepAlive: false }),
      host: `localhost:${live.targetPort}`,
      signal: options?.signal,
    });
  }

  async connect(session: BackendSession): Promise<Duplex> {
    const live = this.#customOf(session);
    return await connectForwarder(await forwarderSocket(live, live.targetPort));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled(this.#creating);
    await Promise.allSettled([...this.#sessions.values()].map((s) => this.destroy({ id: s.id }, { reason: 'poolClosed' })));
    const connection = this.#connected ?? (await this.#connection?.catch(() => undefined));
    if (connection !== undefined) {
      for (const network of this.#networks.values()) {
        const name = await network.catch(() => undefined);
        if (name !== undefined) await removeEgressNetwork(connection.docker, name);
      }
    }
    await connection?.close();
    await this.#zygote.close();
    this.#dir.remove();
  }

  /** Why code-interpreter sessions start without the zygote, if they do (diagnostics, tests). */
  get zygoteDisabledReason(): string | undefined {
    return this.#zygote.disabledReason;
  }

  // ---- internals ----

  async #zygoteFor() {
    const docker = await this.engine();
    const connected = this.#connected!;
    // The runtime sessions really get: the engine's default unless one is configured.
    this.#runtimeName ??=
      this.options.runtime ?? (await docker.info().then((i: { DefaultRuntime?: string }) => i.DefaultRuntime ?? '?'));
    return await this.#zygote.get({ podman: connected.podman, local: connected.socketPath !== undefined }, this.#runtimeName);
  }

  #live(session: BackendSession): LiveSession {
    const live = this.#sessions.get(session.id);
    if (live === undefined || live.destroying !== undefined) {
      throw new SessionNotFoundError(`container session ${session.id} does not exist (destroyed or never created)`);
    }
    return live;
  }

  #agentOf(session: BackendSession): AgentClient {
    const live = this.#live(session);
    if (live.kind === 'custom') throw new UnsupportedError('custom-container sessions have no files API');
    if (live.agent === undefined) throw new BackendError(`session ${session.id} is not ready`);
    return live.agent;
  }

  #customOf(session: BackendSession): LiveSession {
    const live = this.#live(session);
    if (live.kind !== 'custom') throw new UnsupportedError('fetch/connect need a CustomContainer session');
    if (live.exited !== undefined) throw new BackendError(`the session's container has stopped: ${live.exited}`);
    return live;
  }

  /**
   * The SecurityOpt entry applying the seccomp profile. Podman's compat API reads a path on the
   * engine's host (written once into this backend's root-only directory); Docker takes the JSON.
   */
  #seccompOption(podman: boolean): string {
    return podman ? `seccomp=${this.#dir.seccompFile(this.#seccompJson)}` : `seccomp=${this.#seccompJson}`;
  }

  #probeTarget(live: LiveSession): ProbeTarget {
    return { pid: live.pid, socketFor: (port) => forwarderSocket(live, port) };
  }

  async #network(docker: Docker, poolName: string, allow: readonly string[], image: string): Promise<string> {
    let network = this.#networks.get(poolName);
    if (network === undefined) {
      network = ensureEgressNetwork(docker, poolName, allow, this.#log, { image, backendName: this.name });
      this.#networks.set(poolName, network);
      network.catch(() => this.#networks.delete(poolName));
    }
    return await network;
  }
}
