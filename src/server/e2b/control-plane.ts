/**
 * E2B's control plane (`E2B_API_URL`), authenticated by `X-API-KEY` = a sandpool credential:
 * create, list, get and kill sandboxes, and the lifetime routes of lifetime.ts. A sandbox is a
 * session of the pool its template names, allocated to an identifier equal to its `sandboxID`.
 */

import { z } from 'zod';

import { PoolExhaustedError } from '../../errors.js';
import type { SessionPool } from '../../session-pool.js';
import { type Authenticator, requireRole } from '../auth.js';
import { sendEmpty, sendJson } from '../http-io.js';
import { acquireOptions } from '../server-state.js';
import { readJsonObject } from '../request-body.js';
import type { E2bContext, E2bRequest } from './context.js';
import { E2bError, badArgument, notFound, parseOrRefuse, unsupported } from './errors.js';
import { connect, liveSandbox, pause, refresh, setTimeoutOf, timeoutSeconds } from './lifetime.js';
import { type E2bSandbox, newAccessToken, newSandboxId } from './sandboxes.js';
import { detail, listed, sandboxAnswer, sandboxState } from './shapes.js';

const Metadata = z.record(z.string().min(1).max(256), z.string().max(4096)).refine((m) => Object.keys(m).length <= 64, {
  message: 'at most 64 metadata entries',
});

const CreateBody = z.object({
  templateID: z.string().min(1).max(256),
  timeout: z.number().int().min(0).nullish(),
  metadata: Metadata.nullish(),
  envVars: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,255}$/), z.string().max(131_072)).nullish(),
  autoPause: z.boolean().nullish(),
  autoResume: z.object({ enabled: z.boolean().nullish() }).passthrough().nullish(),
  secure: z.boolean().nullish(),
  allow_internet_access: z.boolean().nullish(),
  network: z.record(z.string(), z.unknown()).nullish(),
  mcp: z.unknown().optional(),
  volumeMounts: z.array(z.unknown()).nullish(),
  iam: z.unknown().optional(),
});

/** Which pool serves a template: the configured mapping, else the pool of the same name. */
function poolFor(ctx: E2bContext, templateId: string) {
  const { templates } = ctx.options;
  const name = Object.hasOwn(templates, templateId) ? templates[templateId]! : templateId;
  const entry = ctx.state.registry.get(name);
  if (entry === undefined) throw notFound(`template "${templateId.slice(0, 128)}" not found`);
  const pool = entry.pool;
  if (pool.options.containerType === 'CustomContainer') {
    throw badArgument(`template "${templateId}" names a custom-container pool; E2B sandboxes need a code pool`);
  }
  return pool;
}

function refuseUnsupported(body: z.infer<typeof CreateBody>, pool: SessionPool): void {
  if (body.autoPause === true && (pool.backend.capabilities.pause ?? 'none') === 'none') {
    throw unsupported(`autoPause on the ${pool.backend.name} backend (it cannot pause sessions)`);
  }
  if (body.mcp !== undefined && body.mcp !== null) throw unsupported('the MCP gateway');
  if ((body.volumeMounts?.length ?? 0) > 0) throw unsupported('volume mounts');
  if (body.network !== undefined && body.network !== null && Object.keys(body.network).length > 0) {
    throw unsupported('per-sandbox network rules (egress is a pool setting)');
  }
  if (body.iam !== undefined && body.iam !== null) throw unsupported('workload identity (iam)');
}

async function create(ctx: E2bContext, r: E2bRequest, principal: string): Promise<void> {
  const body = parseOrRefuse(CreateBody, await readJsonObject(r.req, ctx.state.maxJsonBytes));
  const pool = poolFor(ctx, body.templateID);
  refuseUnsupported(body, pool);
  r.audit({ pool: pool.name });
  const egress = pool.options.network.egress === 'EgressEnabled';
  if (typeof body.allow_internet_access === 'boolean' && body.allow_internet_access !== egress) {
    throw badArgument(
      `template "${body.templateID}" runs in pool "${pool.name}", which has ${egress ? 'internet access' : 'no internet access'}; network access is a pool setting`,
    );
  }
  const timeout = timeoutSeconds(ctx, body.timeout ?? ctx.options.defaultTimeoutSeconds);
  const sandboxId = newSandboxId();
  // envVars are bound as the session is claimed: the warm path stays warm.
  const env = body.envVars ?? undefined;
  const session = await pool
    .acquire(sandboxId, { ...acquireOptions(ctx.state, r.req, r.signal), ...(env === undefined ? {} : { env }) })
    .catch((error: unknown) => {
      throw soonerRetry(error, ctx.sandboxes.soonestEndIn(pool.name));
    });
  const now = Date.now();
  const sandbox: E2bSandbox = {
    sandboxId,
    templateId: body.templateID,
    poolName: pool.name,
    session,
    accessToken: newAccessToken(),
    metadata: body.metadata ?? {},
    startedAt: new Date(now),
    endAt: new Date(now + timeout * 1000),
    timeoutSeconds: timeout,
    onTimeout: body.autoPause === true ? 'pause' : 'kill',
    autoResume: body.autoResume?.enabled === true,
    createdBy: principal,
    executions: 0,
    nextPid: 1000,
    processes: new Map(),
  };
  const live = { sandbox, session, pool };
  await ctx.sandboxes.add(live);
  sendJson(r.res, 201, sandboxAnswer(live));
}

/**
 * A full pool says when its soonest session's cooldown ends, but sandboxes end at their own
 * timeout (the pool's cooldown is pushed past it): the sooner of the two is when to retry.
 */
function soonerRetry(error: unknown, sandboxEndsInMs: number | undefined): unknown {
  if (!(error instanceof PoolExhaustedError) || sandboxEndsInMs === undefined) return error;
  if (error.retryAfterMs !== undefined && error.retryAfterMs <= sandboxEndsInMs) return error;
  const ends = `; a sandbox of this pool reaches its timeout in ${Math.ceil(sandboxEndsInMs / 1000)} s`;
  return new PoolExhaustedError(`${error.message}${ends}`, {
    ...(error.details === undefined ? {} : { details: error.details }),
    retryAfterMs: sandboxEndsInMs,
    cause: error,
  });
}

function list(ctx: E2bContext, r: E2bRequest): void {
  const q = r.url.searchParams;
  // No state filter: running and paused ones, as E2B lists them.
  const states = (q.get('state') ?? 'running,paused').split(',').map((s) => s.trim());
  if (states.some((s) => s !== 'running' && s !== 'paused')) throw badArgument('state must be running and/or paused');
  const limitText = q.get('limit') ?? '100';
  const limit = Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw badArgument('limit must be an integer from 1 to 100');
  const offset = decodeToken(q.get('nextToken'));
  const wanted = parseMetadataQuery(q.get('metadata'));
  const template = q.get('template');
  const after = q.get('startedAfter');
  const afterMs = after === null ? undefined : Date.parse(after);
  if (afterMs !== undefined && Number.isNaN(afterMs)) throw badArgument('startedAfter must be an RFC 3339 time');
  const all = ctx.sandboxes
    .list()
    .filter(
      (l) =>
        states.includes(sandboxState(l)) &&
        (template === null || l.sandbox.templateId === template) &&
        (afterMs === undefined || l.sandbox.startedAt.getTime() > afterMs) &&
        Object.entries(wanted).every(([k, v]) => l.sandbox.metadata[k] === v),
    );
  if (q.get('order') === 'desc') all.reverse();
  const page = all.slice(offset, offset + limit);
  const headers: Record<string, string> = {};
  if (offset + limit < all.length) headers['x-next-token'] = Buffer.from(String(offset + limit)).toString('base64url');
  sendJson(r.res, 200, page.map(listed), headers);
}

function decodeToken(token: string | null): number {
  if (token === null || token === '') return 0;
  const offset = Number(Buffer.from(token, 'base64url').toString('utf8'));
  if (!Number.isInteger(offset) || offset < 0) throw badArgument('nextToken is not a token this server issued');
  return offset;
}

/** `metadata=k%3Dv%26k2%3Dv2`: URL-encoded pairs, each key and value encoded once more. */
function parseMetadataQuery(value: string | null): Record<string, string> {
  if (value === null || value === '') return {};
  const out: Record<string, string> = {};
  try {
    for (const [k, v] of new URLSearchParams(value)) out[decodeURIComponent(k)] = decodeURIComponent(v);
  } catch {
    throw badArgument('metadata must be URL-encoded key=value pairs');
  }
  return out;
}

/** The control-plane route of a request (path after `/e2b`), or undefined. */
export function matchControlPlane(
  method: string,
  path: string,
): { operation: string; handle: (ctx: E2bContext, r: E2bRequest, principal: string) => Promise<void> | void } | undefined {
  const seg = path.split('/').filter(Boolean);
  const v2 = seg[0] === 'v2';
  const rest = v2 ? seg.slice(1) : seg;
  if (rest[0] !== 'sandboxes') {
    if (seg.length === 1 && seg[0] === 'health' && method === 'GET') {
      return { operation: 'e2b.health', handle: (_c, r) => sendJson(r.res, 200, { status: 'ok' }) };
    }
    if (['templates', 'snapshots', 'volumes', 'secrets', 'teams', 'nodes', 'access-tokens', 'api-keys'].includes(rest[0] ?? '')) {
      return { operation: 'e2b.unsupported', handle: () => Promise.reject(unsupported(`the /${rest[0]} API`)) };
    }
    return undefined;
  }
  const id = rest[1];
  const action = rest[2];
  if (rest.length === 1) {
    if (method === 'POST') return { operation: 'e2b.create', handle: create };
    if (method === 'GET') return { operation: 'e2b.list', handle: list };
    return undefined;
  }
  if (id === 'metrics' && rest.length === 2) {
    return { operation: 'e2b.unsupported', handle: () => Promise.reject(unsupported('sandbox metrics')) };
  }
  if (id === undefined || rest.length > 3) return undefined;
  if (action === undefined) {
    if (method === 'GET') return { operation: 'e2b.get', handle: (c, r) => sendJson(r.res, 200, detail(liveSandbox(c, r, id))) };
    if (method === 'DELETE') {
      return {
        operation: 'e2b.kill',
        handle: async (c, r) => {
          if (!(await c.sandboxes.kill(id))) throw notFound(`sandbox "${id.slice(0, 64)}" not found`);
          sendEmpty(r.res, 204);
        },
      };
    }
    return undefined;
  }
  if (method === 'POST' && action === 'timeout') return { operation: 'e2b.timeout', handle: (c, r) => setTimeoutOf(c, r, id) };
  if (method === 'POST' && action === 'refreshes') return { operation: 'e2b.refresh', handle: (c, r) => refresh(c, r, id) };
  if (method === 'POST' && (action === 'connect' || action === 'resume')) {
    return { operation: 'e2b.connect', handle: (c, r) => connect(c, r, id) };
  }
  if (method === 'POST' && action === 'pause') return { operation: 'e2b.pause', handle: (c, r) => pause(c, r, id) };
  if (['metrics', 'logs', 'snapshots', 'fork', 'network'].includes(action)) {
    return { operation: 'e2b.unsupported', handle: () => Promise.reject(unsupported(`sandbox ${action}`)) };
  }
  return undefined;
}

/** The principal of a control-plane request, from `X-API-KEY` (or a bearer token). */
export async function authenticateApiKey(auth: Authenticator, r: E2bRequest): Promise<string> {
  const key = r.req.headers['x-api-key'];
  if (Array.isArray(key)) throw new E2bError(401, 'unauthenticated', 'send one X-API-KEY header');
  if (key !== undefined && !/^[\x21-\x7e]{1,1024}$/.test(key)) throw new E2bError(401, 'unauthenticated', 'malformed X-API-KEY');
  const who = await auth.authenticate(key !== undefined ? `Bearer ${key}` : r.req.headers.authorization);
  requireRole(who, ['SessionExecutor']);
  return who.name;
}
