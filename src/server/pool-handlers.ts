/**
 * Pool management: `PUT|GET|PATCH|DELETE /pools/NAME` and `GET /pools`, with Microsoft.App/sessionPools
 * `properties` names plus an optional `backend`. Validation is the library's own (the same zod
 * schemas), so a bad definition gets a 400 naming every problem.
 */

import { optionsToAzureProperties } from '../azure-properties.js';
import { HttpError, badRequest } from './http-errors.js';
import { sendEmpty, sendJson, type RequestContext } from './http-io.js';
import type { FailedDefinition, PoolEntry } from './pool-registry.js';
import { readJsonObject } from './request-body.js';
import type { ServerState } from './server-state.js';

/** The Azure-shaped resource of one pool, with live counts. */
export function poolResource(entry: PoolEntry, baseUrl: string): Record<string, unknown> {
  const { pool } = entry;
  const stats = pool.stats();
  return {
    id: `/pools/${pool.name}`,
    name: pool.name,
    type: 'Microsoft.App/sessionPools',
    backend: pool.backend.name,
    properties: {
      ...optionsToAzureProperties(pool.options),
      poolManagementEndpoint: `${baseUrl}/pools/${encodeURIComponent(pool.name)}`,
      provisioningState: entry.provisioningState,
      ...(entry.startError === undefined ? {} : { provisioningError: entry.startError }),
      status: {
        readySessionCount: stats.ready,
        allocatedSessionCount: stats.allocated,
        pendingSessionCount: stats.pending,
        waitingAcquireCount: stats.waiting,
      },
      isolation: pool.backend.capabilities.isolation,
      definedIn: entry.definition === undefined ? 'code' : 'api',
    },
  };
}

/**
 * A stored definition that failed to load: name, backend, type and the reason, never the stored
 * properties (they hold secret values). Counts are zero; it serves nothing until fixed.
 */
export function failedPoolResource(failed: FailedDefinition, baseUrl: string): Record<string, unknown> {
  return {
    id: `/pools/${failed.name}`,
    name: failed.name,
    type: 'Microsoft.App/sessionPools',
    backend: failed.backend ?? null,
    properties: {
      ...(failed.containerType === undefined ? {} : { containerType: failed.containerType }),
      poolManagementEndpoint: `${baseUrl}/pools/${encodeURIComponent(failed.name)}`,
      provisioningState: 'Failed',
      provisioningError: `the stored definition could not be loaded: ${failed.error}`,
      status: { readySessionCount: 0, allocatedSessionCount: 0, pendingSessionCount: 0, waitingAcquireCount: 0 },
      definedIn: 'api',
    },
  };
}

function existingEntry(state: ServerState, ctx: RequestContext): PoolEntry {
  const name = ctx.route.pool ?? '';
  const entry = state.registry.get(name);
  if (entry === undefined) {
    if (state.registry.getFailed(name) !== undefined) {
      throw new HttpError(
        409,
        'Conflict',
        `pool "${name}" failed to load from its stored definition; replace it with PUT or remove it with DELETE`,
      );
    }
    throw new HttpError(404, 'ResourceNotFound', `no session pool named "${name}"`);
  }
  return entry;
}

/** `{properties, backend}`, or flat properties with an optional `backend` among them. */
function splitBody(body: Record<string, unknown>): { properties: Record<string, unknown>; backend: unknown } {
  const wrapped = body['properties'];
  if (wrapped !== undefined && (typeof wrapped !== 'object' || wrapped === null || Array.isArray(wrapped))) {
    throw badRequest('properties must be an object', 'InvalidRequestContent');
  }
  const properties = { ...((wrapped as Record<string, unknown> | undefined) ?? body) };
  const backend = body['backend'] ?? properties['backend'];
  delete properties['backend'];
  // Read-only fields a client may echo back from a GET.
  for (const key of [
    'poolManagementEndpoint',
    'provisioningState',
    'status',
    'isolation',
    'definedIn',
    'provisioningError',
    'poolManagementType',
    'nodeCount',
  ]) {
    delete properties[key];
  }
  return { properties, backend };
}

export function handleListPools(state: ServerState, ctx: RequestContext): void {
  const value = [
    ...state.registry.entries().map((e) => poolResource(e, ctx.baseUrl)),
    ...state.registry.failed().map((f) => failedPoolResource(f, ctx.baseUrl)),
  ];
  sendJson(ctx.res, 200, { value, nextLink: null });
}

export function handleGetPool(state: ServerState, ctx: RequestContext): void {
  const failed = state.registry.getFailed(ctx.route.pool ?? '');
  const resource =
    failed !== undefined && state.registry.get(failed.name) === undefined
      ? failedPoolResource(failed, ctx.baseUrl)
      : poolResource(existingEntry(state, ctx), ctx.baseUrl);
  sendJson(ctx.res, 200, resource);
}

export async function handlePutPool(state: ServerState, ctx: RequestContext): Promise<void> {
  const name = ctx.route.pool ?? '';
  const { properties, backend } = splitBody(await readJsonObject(ctx.req, state.maxJsonBytes));
  const backendName = state.registry.resolveBackendName(backend, properties);
  const { created, entry } = await state.registry.define({ name, backend: backendName, properties });
  state.executions.dropPool(name);
  state.log({ level: 'info', msg: created ? 'pool created' : 'pool replaced', pool: name, backend: backendName });
  sendJson(ctx.res, created ? 201 : 200, poolResource(entry, ctx.baseUrl));
}

export const UPDATABLE = [
  'readySessionInstances',
  'maxConcurrentSessions',
  'cooldownPeriodInSeconds',
  'maxAlivePeriodInSeconds',
] as const;

/** JSON merge patch (RFC 7386). */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

/** The four settings a running pool can change, read from Azure-shaped properties. */
export function scaleSettings(p: Record<string, unknown>): Record<(typeof UPDATABLE)[number], unknown> {
  const obj = (v: unknown): Record<string, unknown> =>
    typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
  const scale = obj(p['scaleConfiguration']);
  const dyn = obj(p['dynamicPoolConfiguration']);
  const life = obj(dyn['lifecycleConfiguration']);
  return {
    readySessionInstances: scale['readySessionInstances'] ?? dyn['readySessionInstances'],
    maxConcurrentSessions: scale['maxConcurrentSessions'],
    cooldownPeriodInSeconds: life['cooldownPeriodInSeconds'] ?? life['coolDownPeriodInSeconds'] ?? dyn['cooldownPeriodInSeconds'],
    maxAlivePeriodInSeconds: life['maxAlivePeriodInSeconds'],
  };
}

/** Everything but the scale settings, to tell a live update from a rebuild. */
export function withoutScale(p: Record<string, unknown>): string {
  const copy = mergePatch(p, {
    scaleConfiguration: { readySessionInstances: null, maxConcurrentSessions: null },
    dynamicPoolConfiguration: {
      readySessionInstances: null,
      cooldownPeriodInSeconds: null,
      lifecycleConfiguration: { cooldownPeriodInSeconds: null, coolDownPeriodInSeconds: null, maxAlivePeriodInSeconds: null },
    },
  });
  const pruned = prune(copy);
  return JSON.stringify(pruned, Object.keys(flatKeys(pruned)).sort());
}

/** Drop empty objects left behind by removing keys, so `{}` and absent compare equal. */
function prune(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const p = prune(v);
    if (typeof p === 'object' && p !== null && !Array.isArray(p) && Object.keys(p).length === 0) continue;
    out[k] = p;
  }
  return out;
}

function flatKeys(value: unknown, out: Record<string, true> = {}): Record<string, true> {
  if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      out[k] = true;
      flatKeys(v, out);
    }
  }
  return out;
}

/**
 * PATCH: scale and lifecycle timers change the running pool in place (`pool.update`); anything else
 * rebuilds it from the merged definition, like a PUT.
 */
export async function handlePatchPool(state: ServerState, ctx: RequestContext): Promise<void> {
  const entry = existingEntry(state, ctx);
  const { properties: patch, backend } = splitBody(await readJsonObject(ctx.req, state.maxJsonBytes));
  const current = entry.definition?.properties ?? optionsToAzureProperties(entry.pool.options);
  const merged = mergePatch(current, patch) as Record<string, unknown>;
  const backendChanged = backend !== undefined && backend !== (entry.definition?.backend ?? entry.pool.backend.name);
  if (!backendChanged && withoutScale(merged) === withoutScale(current)) {
    const before = scaleSettings(current);
    const after = scaleSettings(merged);
    const update: Record<string, unknown> = {};
    for (const key of UPDATABLE) if (after[key] !== undefined && after[key] !== before[key]) update[key] = after[key];
    entry.pool.update(update);
    if (entry.definition !== undefined)
      await state.registry.persistDefinition(entry, { ...entry.definition, properties: merged });
    return sendJson(ctx.res, 200, poolResource(entry, ctx.baseUrl));
  }
  if (entry.definition === undefined) {
    throw new HttpError(
      409,
      'Conflict',
      `pool "${entry.pool.name}" is defined in code; only scale settings can be changed over HTTP`,
    );
  }
  const backendName = state.registry.resolveBackendName(backend ?? entry.definition.backend, merged);
  const { entry: rebuilt } = await state.registry.define({ name: entry.pool.name, backend: backendName, properties: merged });
  sendJson(ctx.res, 200, poolResource(rebuilt, ctx.baseUrl));
}

export async function handleDeletePool(state: ServerState, ctx: RequestContext): Promise<void> {
  const name = ctx.route.pool ?? '';
  const removed = await state.registry.remove(name);
  state.executions.dropPool(name);
  if (removed) state.log({ level: 'info', msg: 'pool deleted', pool: name });
  sendEmpty(ctx.res, removed ? 200 : 204);
}
