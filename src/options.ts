/**
 * Pool options, validated with zod at the edge. The schemas are the single source of truth: the
 * library, the HTTP server and the CLI all parse with them, so a bad option gets the same message
 * everywhere. Names follow Azure's Microsoft.App/sessionPools properties.
 */

import { z } from 'zod';

import type { Backend } from './backend.js';
import { InvalidOptionsError } from './errors.js';
import { imageReferenceProblem } from './image-reference.js';

const MiB = 1024 * 1024;

/** Accepts any letter case for an enum value (Azure clients send `inline`, `Inline`, `INLINE`). */
export function caseInsensitiveEnum<const T extends readonly [string, ...string[]]>(values: T) {
  return z.preprocess(
    (value) => (typeof value === 'string' ? (values.find((v) => v.toLowerCase() === value.toLowerCase()) ?? value) : value),
    z.enum(values),
  );
}

export const CONTAINER_TYPES = ['PythonLTS', 'NodeLTS', 'Shell', 'CustomContainer'] as const;
export const ContainerTypeSchema = caseInsensitiveEnum(CONTAINER_TYPES);
export type ContainerType = (typeof CONTAINER_TYPES)[number];

export const LifecycleTypeSchema = caseInsensitiveEnum(['Timed', 'OnContainerExit'] as const);
export type LifecycleType = z.output<typeof LifecycleTypeSchema>;

export const SessionLimitsSchema = z
  .object({
    /** Memory per session in MiB (isolate heap, container cgroup, VM RAM). @default 256 */
    memoryMb: z
      .number()
      .int()
      .min(8)
      .max(1024 * 1024)
      .default(256),
    /** CPUs per session (container quota, VM vCPUs). @default 1 */
    cpus: z.number().positive().max(256).default(1),
    /** Default wall-clock limit of one execution; Azure's platform limit is 220 s. @default 220 */
    executionTimeoutSeconds: z.number().positive().max(3600).default(220),
    /** Per-stream stdout/stderr cap in bytes; output past it is cut and marked. @default 1 MiB */
    outputMaxBytes: z
      .number()
      .int()
      .min(1)
      .max(64 * MiB)
      .default(MiB),
    /** Largest file accepted by uploadFile; Azure's cap is 128 MB. @default 128 MiB */
    maxFileSizeBytes: z
      .number()
      .int()
      .min(1)
      .max(16 * 1024 * MiB)
      .default(128 * MiB),
    /** Processes per session (containers, VMs). @default 256 */
    pids: z.number().int().min(8).max(65536).default(256),
    /** Disk for the writable layer and /mnt/data in MiB (containers, VMs). @default 1024 */
    diskMb: z
      .number()
      .int()
      .min(16)
      .max(1024 * 1024)
      .default(1024),
    /** Executions that may wait behind the running one on a session before SessionBusyError. @default 64 */
    maxQueuedExecutions: z.number().int().min(0).max(10_000).default(64),
  })
  .strict();
export type SessionLimits = z.output<typeof SessionLimitsSchema>;
export type SessionLimitsInput = z.input<typeof SessionLimitsSchema>;

export const NetworkPolicySchema = z
  .object({
    /** `EgressDisabled` (default): no traffic leaves the session. */
    egress: caseInsensitiveEnum(['EgressDisabled', 'EgressEnabled'] as const).default('EgressDisabled'),
    /** With EgressEnabled, optionally only these CIDRs and DNS names (enforced outside the sandbox). */
    allow: z.array(z.string().min(1).max(253)).max(1000).default([]),
  })
  .strict();
export type NetworkPolicy = z.output<typeof NetworkPolicySchema>;

const EnvVarSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid environment variable name'),
    value: z.string().optional(),
    secretRef: z.string().min(1).optional(),
  })
  .strict()
  .refine((e) => (e.value === undefined) !== (e.secretRef === undefined), 'give exactly one of value or secretRef');

const ProbeSchema = z
  .object({
    type: caseInsensitiveEnum(['Liveness', 'Startup'] as const),
    httpGet: z.object({ path: z.string().default('/'), port: z.number().int().min(1).max(65535) }).optional(),
    tcpSocket: z.object({ port: z.number().int().min(1).max(65535) }).optional(),
    initialDelaySeconds: z.number().min(0).max(3600).default(0),
    periodSeconds: z.number().min(0.1).max(3600).default(1),
    timeoutSeconds: z.number().min(0.1).max(3600).default(1),
    failureThreshold: z.number().int().min(1).max(1000).default(30),
  })
  .refine((p) => p.httpGet !== undefined || p.tcpSocket !== undefined, 'a probe needs httpGet or tcpSocket');

/** An OCI/Docker image reference, checked against the reference grammar (src/image-reference.ts). */
export const ImageReferenceSchema = z
  .string()
  .min(1)
  .max(512)
  .superRefine((image, ctx) => {
    const problem = imageReferenceProblem(image);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `not a valid image reference: ${problem}` });
  });

export const CustomContainerTemplateSchema = z.object({
  image: ImageReferenceSchema,
  command: z.array(z.string()).max(256).optional(),
  args: z.array(z.string()).max(256).optional(),
  env: z.array(EnvVarSchema).max(512).default([]),
  resources: z
    .object({
      cpu: z.number().positive().max(256).optional(),
      memory: z
        .string()
        .regex(/^\d+(\.\d+)?(Gi|Mi)$/)
        .optional(),
    })
    .optional(),
  /** Port inside the container that `session.fetch` forwards to. */
  targetPort: z.number().int().min(1).max(65535),
  probes: z.array(ProbeSchema).max(4).default([]),
});
export type CustomContainerTemplateInput = z.input<typeof CustomContainerTemplateSchema>;

/** The custom-container template as a backend receives it: secrets resolved into env values. */
export interface CustomContainerTemplate {
  readonly image: string;
  readonly command?: readonly string[] | undefined;
  readonly args?: readonly string[] | undefined;
  readonly env: readonly { readonly name: string; readonly value: string }[];
  readonly cpu?: number | undefined;
  readonly memoryMb?: number | undefined;
  readonly targetPort: number;
  readonly probes: z.output<typeof ProbeSchema>[];
}

function isBackend(value: unknown): value is Backend {
  if (typeof value !== 'object' || value === null) return false;
  const b = value as Partial<Backend>;
  return (
    typeof b.name === 'string' &&
    typeof b.capabilities === 'object' &&
    typeof b.create === 'function' &&
    typeof b.execute === 'function' &&
    typeof b.destroy === 'function' &&
    typeof b.close === 'function'
  );
}

export const SessionPoolOptionsSchema = z
  .object({
    /** Pool name, used in labels, logs and metrics. @default "default" */
    name: z
      .string()
      .regex(/^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$/, 'must be 1–63 letters, digits, "-" or "_", starting with a letter or digit')
      .default('default'),
    /** The sandbox engine. */
    backend: z.custom<Backend>(isBackend, {
      message: 'must be a sandpool Backend (an object with name, capabilities, create, execute, destroy and close)',
    }),
    /** Session kind. @default PythonLTS where the backend runs Python, else its first kind */
    containerType: ContainerTypeSchema.optional(),
    /** Sessions kept Ready (pre-started) at all times: a floor. @default 2 */
    readySessionInstances: z.number().int().min(0).max(100_000).default(2),
    /** Most sessions alive at once (pending + ready + allocated). @default 100 */
    maxConcurrentSessions: z.number().int().min(1).max(100_000).default(100),
    /** `Timed`: destroyed after the cooldown idle; `OnContainerExit`: when the process exits or maxAlive. */
    lifecycleType: LifecycleTypeSchema.default('Timed'),
    /** Idle time before an allocated session is destroyed (Timed). @default 300 */
    cooldownPeriodInSeconds: z
      .number()
      .positive()
      .max(7 * 86_400)
      .optional(),
    /** Hard cap on an allocated session's life, from allocation. Default for OnContainerExit: 3600. */
    maxAlivePeriodInSeconds: z
      .number()
      .positive()
      .max(30 * 86_400)
      .optional(),
    limits: SessionLimitsSchema.default(() => SessionLimitsSchema.parse({})),
    network: NetworkPolicySchema.default(() => NetworkPolicySchema.parse({})),
    customContainerTemplate: CustomContainerTemplateSchema.optional(),
    /** Secrets referenced by `customContainerTemplate.env[].secretRef`. Never logged or emitted. */
    secrets: z
      .array(z.object({ name: z.string().min(1).max(253), value: z.string() }).strict())
      .max(256)
      .default([]),
    /**
     * Grow the ready set beyond `readySessionInstances` with the observed arrival rate, so bursts
     * find Ready sessions: target = arrivals/s × `coverSeconds`, capped by `maxReadySessionInstances`
     * (the host budget) and `maxConcurrentSessions`. `readySessionInstances` stays the floor.
     */
    adaptiveReady: z
      .object({
        coverSeconds: z.number().positive().max(3600).default(2),
        maxReadySessionInstances: z.number().int().min(0).max(100_000),
        windowSeconds: z.number().int().min(1).max(600).default(10),
      })
      .strict()
      .optional(),
    /** Sessions the pool creates at once while refilling. @default 4 */
    refillConcurrency: z.number().int().min(1).max(256).default(4),
    /** `close()` also closes the backend. Set false when several pools share one backend. @default true */
    ownsBackend: z.boolean().default(true),
    /** Upper bound on how long `close()` waits for in-flight executions. @default 10 */
    closeGracePeriodSeconds: z.number().min(0).max(3600).default(10),
    /**
     * What the cooldown does to an idle session: `destroy` it (data wiped), or `pause` it to disk
     * (backends whose `capabilities.pause` is not `none`); the next use resumes it. @default "destroy"
     */
    idleAction: caseInsensitiveEnum(['destroy', 'pause'] as const).default('destroy'),
    /** How long a paused session is kept before it is deleted and its data wiped. @default 604800 (7 days) */
    maxPausedPeriodInSeconds: z
      .number()
      .positive()
      .max(365 * 86_400)
      .default(7 * 86_400),
    /**
     * Where paused sessions and snapshots are kept (created 0700). Given, they survive `close()` and
     * a restart: the next pool with this directory and name finds them. Absent, a private temporary
     * directory, wiped by `close()`.
     */
    dataDirectory: z.string().min(1).max(4096).optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.readySessionInstances > o.maxConcurrentSessions) {
      ctx.addIssue({
        code: 'custom',
        path: ['readySessionInstances'],
        message: `must not exceed maxConcurrentSessions (${o.readySessionInstances} > ${o.maxConcurrentSessions})`,
      });
    }
    const caps = o.backend.capabilities;
    if (o.containerType !== undefined && !caps.containerTypes.includes(o.containerType)) {
      ctx.addIssue({
        code: 'custom',
        path: ['containerType'],
        message: `backend "${o.backend.name}" cannot run ${o.containerType} sessions (it runs: ${caps.containerTypes.join(', ')})`,
      });
    }
    if (o.containerType === 'CustomContainer' && o.customContainerTemplate === undefined) {
      ctx.addIssue({ code: 'custom', path: ['customContainerTemplate'], message: 'is required for CustomContainer pools' });
    }
    if (o.customContainerTemplate !== undefined && o.containerType !== 'CustomContainer') {
      ctx.addIssue({
        code: 'custom',
        path: ['customContainerTemplate'],
        message: 'is only allowed with containerType CustomContainer',
      });
    }
    if (o.lifecycleType === 'OnContainerExit' && o.cooldownPeriodInSeconds !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['cooldownPeriodInSeconds'],
        message: 'is not allowed with lifecycleType OnContainerExit (use maxAlivePeriodInSeconds)',
      });
    }
    if (o.idleAction === 'pause' && (caps.pause ?? 'none') === 'none') {
      ctx.addIssue({
        code: 'custom',
        path: ['idleAction'],
        message: `backend "${o.backend.name}" cannot pause sessions (capabilities.pause is none)`,
      });
    }
    if (o.idleAction === 'pause' && (o.containerType === 'CustomContainer' || o.lifecycleType === 'OnContainerExit')) {
      ctx.addIssue({
        code: 'custom',
        path: ['idleAction'],
        message: 'pause needs a Timed code-interpreter pool (CustomContainer and OnContainerExit sessions cannot pause)',
      });
    }
    if (o.network.egress === 'EgressEnabled' && !caps.network) {
      ctx.addIssue({
        code: 'custom',
        path: ['network', 'egress'],
        message: `backend "${o.backend.name}" has no network to enable`,
      });
    }
    for (const [i, env] of (o.customContainerTemplate?.env ?? []).entries()) {
      if (env.secretRef !== undefined && !o.secrets.some((s) => s.name === env.secretRef)) {
        ctx.addIssue({
          code: 'custom',
          path: ['customContainerTemplate', 'env', i, 'secretRef'],
          message: `refers to secret "${env.secretRef}", which is not in secrets`,
        });
      }
    }
  });

export type SessionPoolOptions = z.input<typeof SessionPoolOptionsSchema>;

/** Options after validation, with every default applied. */
export interface ResolvedPoolOptions
  extends Omit<z.output<typeof SessionPoolOptionsSchema>, 'containerType' | 'cooldownPeriodInSeconds'> {
  readonly containerType: ContainerType;
  readonly cooldownPeriodInSeconds: number;
}

/** Turn zod issues into one message that names every problem, with its path. */
export function formatIssues(error: z.ZodError, subject: string): string {
  const lines = error.issues.map((issue) => {
    const path = issue.path.map(String).join('.') || '(root)';
    return `  - ${path}: ${issue.message}`;
  });
  return `invalid ${subject}:\n${lines.join('\n')}`;
}

/** Parse with a schema, or throw InvalidOptionsError naming every problem. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, subject: string): z.output<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    throw new InvalidOptionsError(formatIssues(parsed.error, subject), {
      details: { issues: parsed.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })) },
    });
  }
  return parsed.data;
}

export function resolvePoolOptions(input: SessionPoolOptions): ResolvedPoolOptions {
  const o = parseOrThrow(SessionPoolOptionsSchema, input, 'SessionPool options');
  const types = o.backend.capabilities.containerTypes;
  const containerType = o.containerType ?? (types.includes('PythonLTS') ? 'PythonLTS' : (types[0] ?? 'NodeLTS'));
  return {
    ...o,
    containerType,
    cooldownPeriodInSeconds: o.cooldownPeriodInSeconds ?? 300,
    maxAlivePeriodInSeconds: o.maxAlivePeriodInSeconds ?? (o.lifecycleType === 'OnContainerExit' ? 3600 : undefined),
  };
}

/** Resolve `secretRef`s and memory strings into the plain template a backend receives. */
export function resolveCustomContainer(o: ResolvedPoolOptions): CustomContainerTemplate | undefined {
  const t = o.customContainerTemplate;
  if (t === undefined) return undefined;
  const secrets = new Map(o.secrets.map((s) => [s.name, s.value]));
  const memory = t.resources?.memory;
  const memoryMb = memory === undefined ? undefined : Math.round(parseFloat(memory) * (memory.endsWith('Gi') ? 1024 : 1));
  return {
    image: t.image,
    command: t.command,
    args: t.args,
    env: t.env.map((e) => ({ name: e.name, value: e.value ?? secrets.get(e.secretRef ?? '') ?? '' })),
    cpu: t.resources?.cpu,
    memoryMb,
    targetPort: t.targetPort,
    probes: t.probes,
  };
}
