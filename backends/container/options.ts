/** Options of `ContainerBackend`, validated with zod like the pool's. */

import { z } from 'zod';

import type { BackendLogEvent } from '../../src/backend.js';
import { ImageReferenceSchema, parseOrThrow } from '../../src/options.js';

/**
 * The image `npm run setup` builds (scripts/setup/20-container.mjs). `SANDPOOL_CONTAINER_IMAGE`
 * names another tag of it: setup then tags its build with that name instead of `:latest` and prunes
 * nothing, so several checkouts with different agent code can share one engine.
 */
export const DEFAULT_IMAGE = process.env['SANDPOOL_CONTAINER_IMAGE'] || 'localhost/sandpool/code-interpreter:latest';

export const ContainerBackendOptionsSchema = z
  .object({
    /** Code-interpreter image (Python/JavaScript/shell sessions). @default $SANDPOOL_CONTAINER_IMAGE or localhost/sandpool/code-interpreter:latest */
    image: ImageReferenceSchema.default(DEFAULT_IMAGE),
    /** Engine socket; wins over DOCKER_HOST. Without both, well-known sockets are tried, then podman is started. */
    socketPath: z.string().min(1).optional(),
    /** Start `podman system service` when no engine answers. @default true */
    startPodman: z.boolean().default(true),
    /**
     * OCI runtime, checked against the engine's list in `prepare()`: `runc`, `crun`, `runsc` (gVisor),
     * `kata`… Undefined uses the engine's default (runc as configured by setup).
     */
    runtime: z
      .string()
      .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/)
      .optional(),
    /** Host directory for per-session sockets (root-only). @default /run/sandpool/container */
    runDir: z.string().min(1).default('/run/sandpool/container'),
    /** Longest wait for a session to become Ready (agent up / port listening / startup probe). @default 120000 */
    createTimeoutMs: z.number().int().min(1000).max(3_600_000).default(120_000),
    /** nofile ulimit of each container. @default 4096 */
    nofile: z.number().int().min(64).max(1_048_576).default(4096),
    /**
     * nproc ulimit (soft = hard). It counts every process of the uid on the host (all sessions share
     * uid 1000), so it is a backstop against fork storms; the per-session cap is `limits.pids`.
     * Must not exceed the engine's own hard limit. @default 4096
     */
    nproc: z.number().int().min(64).max(1_048_576).default(4096),
    /**
     * Uid (and gid) code-interpreter sessions run as. Without a user namespace it is the same uid on
     * the host, so it should be one no host account uses (on this project's hosts uid 1000 is a real
     * user): then a container escape is nobody, and the per-uid nproc limit counts sessions only.
     * @default 61000
     */
    uid: z.number().int().min(1).max(4_000_000_000).default(61_000),
    /** Pull custom-container images missing from the engine's store. @default true */
    pullImages: z.boolean().default(true),
    /** Custom containers: read-only root filesystem (with a /tmp tmpfs). @default false */
    customReadonlyRootfs: z.boolean().default(false),
    /** Custom containers: capabilities kept after dropping all (e.g. NET_BIND_SERVICE). @default [] */
    customCapAdd: z
      .array(z.string().regex(/^[A-Z_]{2,32}$/))
      .max(64)
      .default([]),
    /**
     * A seccomp profile file (Docker/containers JSON) to apply instead of sandpool's own
     * (backends/container/seccomp/profile.json: the engine default minus new namespaces, setns and
     * the socket families a sandbox does not need). @default sandpool's profile
     */
    seccompProfile: z.string().min(1).optional(),
    /** Extra agent flags for code-interpreter sessions, e.g. `['--preload', 'numpy']`. @default [] */
    agentArgs: z.array(z.string().max(4096)).max(64).default([]),
    /**
     * Start code-interpreter sessions from the zygote (zygote.ts) where it can run: a local, rootful
     * Podman with runc or crun. Elsewhere, or with `false`, the engine starts each agent. @default true
     */
    zygote: z.boolean().default(true),
    /** Diagnostics (engine found or started, image builds, zygote, leftovers removed); never secrets or session data. @default no-op */
    onLog: z.custom<(event: BackendLogEvent) => void>((v) => typeof v === 'function', 'must be a function').optional(),
  })
  .strict();

export type ContainerBackendOptions = z.input<typeof ContainerBackendOptionsSchema>;
export type ResolvedContainerOptions = z.output<typeof ContainerBackendOptionsSchema>;

export function resolveContainerOptions(input: ContainerBackendOptions): ResolvedContainerOptions {
  return parseOrThrow(ContainerBackendOptionsSchema, input, 'ContainerBackend options');
}
