/**
 * Mapping between Azure's `Microsoft.App/sessionPools` `properties` object and SessionPool options,
 * both ways. Every ARM generation's field placement is accepted (see azure-sessions-api.md §4):
 * `lifecycleConfiguration` (≥2025-01-01) and the older `dynamicPoolConfiguration.executionType`,
 * Learn's misplaced `readySessionInstances` and misspelled `coolDownPeriodInSeconds`.
 */

import { z } from 'zod';

import type { Backend } from './backend.js';
import { caseInsensitiveEnum, ContainerTypeSchema, LifecycleTypeSchema, parseOrThrow } from './options.js';
import type { ResolvedPoolOptions, SessionLimitsInput, SessionPoolOptions } from './options.js';

const LifecycleSchema = z
  .object({
    lifecycleType: LifecycleTypeSchema.optional(),
    cooldownPeriodInSeconds: z.number().optional(),
    coolDownPeriodInSeconds: z.number().optional(),
    maxAlivePeriodInSeconds: z.number().optional(),
    /** sandpool extension: `destroy` (Azure's behaviour) or `pause` idle sessions to disk. */
    idleAction: z.string().optional(),
    /** sandpool extension: how long a paused session is kept. */
    maxPausedPeriodInSeconds: z.number().optional(),
  })
  .loose();

const ContainerSchema = z
  .object({
    name: z.string().optional(),
    image: z.string(),
    command: z.array(z.string()).optional(),
    args: z.array(z.string()).optional(),
    env: z.array(z.object({ name: z.string(), value: z.string().optional(), secretRef: z.string().optional() })).optional(),
    resources: z.object({ cpu: z.number().optional(), memory: z.string().optional() }).loose().optional(),
    probes: z.array(z.record(z.string(), z.unknown())).optional(),
  })
  .loose();

export const AzurePoolPropertiesSchema = z
  .object({
    containerType: ContainerTypeSchema.optional(),
    scaleConfiguration: z
      .object({ maxConcurrentSessions: z.number().optional(), readySessionInstances: z.number().optional() })
      .loose()
      .optional(),
    dynamicPoolConfiguration: z
      .object({
        executionType: caseInsensitiveEnum(['Timed'] as const).optional(),
        cooldownPeriodInSeconds: z.number().optional(),
        readySessionInstances: z.number().optional(),
        lifecycleConfiguration: LifecycleSchema.optional(),
      })
      .loose()
      .optional(),
    customContainerTemplate: z
      .object({
        containers: z.array(ContainerSchema).min(1, 'needs one container').max(1, 'supports one container per session'),
        ingress: z.object({ targetPort: z.number() }).loose(),
        registryCredentials: z.record(z.string(), z.unknown()).optional(),
      })
      .loose()
      .optional(),
    secrets: z.array(z.object({ name: z.string(), value: z.string() }).loose()).optional(),
    sessionNetworkConfiguration: z
      .object({ status: caseInsensitiveEnum(['EgressEnabled', 'EgressDisabled'] as const) })
      .loose()
      .optional(),
    /** sandpool extension: per-session limits. */
    limits: z.record(z.string(), z.unknown()).optional(),
    /** sandpool extension: egress allow-list. */
    egressAllowList: z.array(z.string()).optional(),
  })
  .loose();

export interface AzurePoolOverrides {
  readonly name: string;
  readonly backend: Backend;
  readonly limits?: SessionLimitsInput | undefined;
  readonly refillConcurrency?: number | undefined;
  readonly ownsBackend?: boolean | undefined;
  readonly closeGracePeriodSeconds?: number | undefined;
  /** Where the pool keeps paused sessions and snapshots (see SessionPoolOptions.dataDirectory). */
  readonly dataDirectory?: string | undefined;
}

/** Azure `properties` → SessionPool options. Throws InvalidOptionsError naming every problem. */
export function azurePropertiesToOptions(properties: unknown, overrides: AzurePoolOverrides): SessionPoolOptions {
  const p = parseOrThrow(AzurePoolPropertiesSchema, properties ?? {}, 'session pool properties');
  const dyn = p.dynamicPoolConfiguration;
  const life = dyn?.lifecycleConfiguration;
  const template = p.customContainerTemplate;
  const container = template?.containers[0];
  const options: Record<string, unknown> = {
    name: overrides.name,
    backend: overrides.backend,
    containerType: p.containerType,
    readySessionInstances: p.scaleConfiguration?.readySessionInstances ?? dyn?.readySessionInstances,
    maxConcurrentSessions: p.scaleConfiguration?.maxConcurrentSessions,
    lifecycleType: life?.lifecycleType,
    cooldownPeriodInSeconds: life?.cooldownPeriodInSeconds ?? life?.coolDownPeriodInSeconds ?? dyn?.cooldownPeriodInSeconds,
    maxAlivePeriodInSeconds: life?.maxAlivePeriodInSeconds,
    idleAction: life?.idleAction,
    maxPausedPeriodInSeconds: life?.maxPausedPeriodInSeconds,
    dataDirectory: overrides.dataDirectory,
    limits: { ...(p.limits ?? {}), ...(overrides.limits ?? {}) },
    network:
      p.sessionNetworkConfiguration === undefined && p.egressAllowList === undefined
        ? undefined
        : { egress: p.sessionNetworkConfiguration?.status ?? 'EgressDisabled', allow: p.egressAllowList ?? [] },
    customContainerTemplate:
      container === undefined
        ? undefined
        : {
            image: container.image,
            command: container.command,
            args: container.args,
            env: container.env ?? [],
            resources: container.resources,
            targetPort: template!.ingress.targetPort,
            probes: container.probes ?? [],
          },
    secrets: p.secrets?.map((s) => ({ name: s.name, value: s.value })),
    refillConcurrency: overrides.refillConcurrency,
    ownsBackend: overrides.ownsBackend,
    closeGracePeriodSeconds: overrides.closeGracePeriodSeconds,
  };
  // Leave absent fields out so the pool's defaults apply (exactOptionalPropertyTypes).
  for (const key of Object.keys(options)) if (options[key] === undefined) delete options[key];
  return options as unknown as SessionPoolOptions;
}

/** SessionPool options → Azure `properties` (secret values are never included). */
export function optionsToAzureProperties(o: ResolvedPoolOptions): Record<string, unknown> {
  const lifecycleConfiguration: Record<string, unknown> = { lifecycleType: o.lifecycleType };
  if (o.lifecycleType === 'Timed') lifecycleConfiguration['cooldownPeriodInSeconds'] = o.cooldownPeriodInSeconds;
  if (o.maxAlivePeriodInSeconds !== undefined) lifecycleConfiguration['maxAlivePeriodInSeconds'] = o.maxAlivePeriodInSeconds;
  if (o.idleAction === 'pause') {
    lifecycleConfiguration['idleAction'] = o.idleAction;
    lifecycleConfiguration['maxPausedPeriodInSeconds'] = o.maxPausedPeriodInSeconds;
  }
  const t = o.customContainerTemplate;
  return {
    containerType: o.containerType,
    poolManagementType: 'Dynamic',
    scaleConfiguration: { maxConcurrentSessions: o.maxConcurrentSessions, readySessionInstances: o.readySessionInstances },
    dynamicPoolConfiguration: { lifecycleConfiguration },
    sessionNetworkConfiguration: { status: o.network.egress },
    ...(o.network.allow.length > 0 ? { egressAllowList: o.network.allow } : {}),
    ...(t === undefined
      ? {}
      : {
          customContainerTemplate: {
            containers: [
              {
                name: 'main',
                image: t.image,
                ...(t.command === undefined ? {} : { command: t.command }),
                ...(t.args === undefined ? {} : { args: t.args }),
                env: t.env.map((e) =>
                  e.secretRef === undefined ? { name: e.name, value: e.value } : { name: e.name, secretRef: e.secretRef },
                ),
                ...(t.resources === undefined ? {} : { resources: t.resources }),
                probes: t.probes,
              },
            ],
            ingress: { targetPort: t.targetPort },
          },
        }),
    ...(o.secrets.length > 0 ? { secrets: o.secrets.map((s) => ({ name: s.name })) } : {}),
    limits: o.limits,
  };
}
