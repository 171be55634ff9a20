/**
 * Session management: `GET|DELETE session`, `listSessions`, `metadata` and the `.management/*`
 * routes. Unlike execute and upload, these never create a session: an unknown identifier is
 * Azure's 400 `SessionWithIdentifierNotFound`.
 */

import { SessionNotFoundError } from '../errors.js';
import type { SessionApi } from '../session.js';
import type { SessionPool } from '../session-pool.js';
import { badRequest } from './http-errors.js';
import { sendEmpty, sendJson, sendText, type RequestContext } from './http-io.js';
import { identifierOf, poolEntry, type ServerState } from './server-state.js';
import { sessionList, sessionResource } from './shapes.js';

const PAGE_SIZE = 300;

/** The identifier's live session, here or (cluster mode) on the member that owns it. */
async function existing(state: ServerState, pool: SessionPool, identifier: string): Promise<SessionApi> {
  const session = state.cluster === undefined ? pool.get(identifier) : await state.cluster.get(pool, identifier);
  if (session === undefined) {
    throw new SessionNotFoundError(`no session with this identifier in session pool "${pool.name}"`);
  }
  return session;
}

/** GET session, POST .management/getSession. */
export async function handleGetSession(state: ServerState, ctx: RequestContext): Promise<void> {
  const { pool } = poolEntry(state, ctx);
  sendJson(ctx.res, 200, sessionResource((await existing(state, pool, identifierOf(ctx))).info()));
}

/** DELETE session (204), POST .management/stopSession (200 text, as Azure answers). */
export async function handleStopSession(state: ServerState, ctx: RequestContext, style: 'delete' | 'management'): Promise<void> {
  const { pool } = poolEntry(state, ctx);
  const identifier = identifierOf(ctx);
  await (await existing(state, pool, identifier)).stop();
  if (style === 'delete') return sendEmpty(ctx.res, 204);
  sendText(ctx.res, 200, `Session ${identifier} in session pool ${pool.name} stopped.`);
}

/** GET listSessions, POST .management/listSessions: allocated sessions (of every member), 300 per page. */
export async function handleListSessions(state: ServerState, ctx: RequestContext): Promise<void> {
  const { pool } = poolEntry(state, ctx);
  const skipText = ctx.url.searchParams.get('skip') ?? '0';
  const skip = Number(skipText);
  if (!Number.isInteger(skip) || skip < 0) throw badRequest('skip must be a non-negative integer');
  const sessions = state.cluster === undefined ? pool.sessions() : await state.cluster.sessions(pool);
  const all = sessions
    .filter((s) => s.identifier !== undefined && (s.state === 'Allocated' || s.state === 'Paused'))
    .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
  const page = all.slice(skip, skip + PAGE_SIZE);
  let nextLink: string | null = null;
  if (skip + PAGE_SIZE < all.length) {
    const next = new URL(ctx.url.toString());
    next.searchParams.set('skip', String(skip + PAGE_SIZE));
    nextLink = `${ctx.baseUrl}${next.pathname}${next.search}`;
  }
  sendJson(ctx.res, 200, sessionList(page, all.length, nextLink));
}

const RUNTIMES: Record<string, { name: string; language: string }> = {
  PythonLTS: { name: 'python', language: 'python' },
  NodeLTS: { name: 'node', language: 'javascript' },
  Shell: { name: 'shell', language: 'shell' },
  CustomContainer: { name: 'custom', language: 'custom' },
};

/** GET metadata: what the pool runs. Versions are the backend's, where it says. */
export function handleMetadata(state: ServerState, ctx: RequestContext, startedAt: Date): void {
  const { pool } = poolEntry(state, ctx);
  const runtime = RUNTIMES[pool.options.containerType] ?? { name: pool.options.containerType, language: '' };
  sendJson(ctx.res, 200, {
    runtimes: [{ name: runtime.name, version: '' }],
    preInstalledPackages: [],
    createdAt: startedAt.toISOString(),
    lastUpdatedAt: startedAt.toISOString(),
    jupyterKernel: null,
    containerType: pool.options.containerType,
    backend: pool.backend.name,
    isolation: pool.backend.capabilities.isolation,
    languages: [...pool.backend.capabilities.languages],
  });
}
