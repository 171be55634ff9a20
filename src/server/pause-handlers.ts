/**
 * The sandpool extension routes for sessions that outlive memory (docs/SERVER.md): pause, resume,
 * extend, fork and snapshots, each one `SessionPool` call. Pause, resume, extend, fork and snapshot
 * name an existing session (`?identifier=`) and never create one; `fromSnapshot` creates the
 * identifier's session from a snapshot. Not in cluster mode (a session may live on another member).
 */

import { z } from 'zod';

import { InvalidRequestError, SessionNotFoundError, UnsupportedError } from '../errors.js';
import { assertIdentifier } from '../identifier.js';
import { MAX_EXTEND_SECONDS, type Session } from '../session.js';
import type { SessionPool } from '../session-pool.js';
import type { PauseResult, ResumeResult } from '../session-types.js';
import { HttpError } from './http-errors.js';
import { sendEmpty, sendJson, type RequestContext } from './http-io.js';
import { readJsonObject } from './request-body.js';
import { identifierOf, poolEntry, type ServerState } from './server-state.js';
import { sessionResource } from './shapes.js';

function localPool(state: ServerState, ctx: RequestContext): SessionPool {
  if (state.cluster !== undefined)
    throw new UnsupportedError('pause, resume, fork and snapshots are not available in cluster mode');
  return poolEntry(state, ctx).pool;
}

function existing(pool: SessionPool, identifier: string): Session {
  const session = pool.get(identifier);
  if (session === undefined) throw new SessionNotFoundError(`no session with this identifier in session pool "${pool.name}"`);
  return session;
}

async function body<S extends z.ZodType>(state: ServerState, ctx: RequestContext, schema: S): Promise<z.output<S>> {
  const parsed = schema.safeParse(await readJsonObject(ctx.req, state.maxJsonBytes));
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
    throw new InvalidRequestError(`invalid request body: ${problems}`);
  }
  return parsed.data;
}

const lostShape = (r: PauseResult | ResumeResult) => r.lost.map((l) => ({ ...l }));

/** POST session/pause: 200 with the checkpoint's size and what it could not keep. */
export async function handlePause(state: ServerState, ctx: RequestContext): Promise<void> {
  const pool = localPool(state, ctx);
  const identifier = identifierOf(ctx);
  const result = await existing(pool, identifier).pause();
  sendJson(ctx.res, 200, {
    identifier,
    state: 'Paused',
    bytes: result.bytes,
    durationMs: result.durationMs,
    lost: lostShape(result),
  });
}

/** POST session/resume: 200; `resumed: false` when it was not paused. */
export async function handleResume(state: ServerState, ctx: RequestContext): Promise<void> {
  const pool = localPool(state, ctx);
  const identifier = identifierOf(ctx);
  const result = await existing(pool, identifier).resume();
  sendJson(ctx.res, 200, { identifier, ...result, lost: lostShape(result) });
}

const ExtendBody = z.object({ seconds: z.number().positive().max(MAX_EXTEND_SECONDS) }).strict();

/** POST session/extend `{ seconds }`: 200 with the session (its new `expiresAt`). */
export async function handleExtend(state: ServerState, ctx: RequestContext): Promise<void> {
  const pool = localPool(state, ctx);
  const identifier = identifierOf(ctx);
  const { seconds } = await body(state, ctx, ExtendBody);
  const session = existing(pool, identifier);
  await session.extend(seconds);
  sendJson(ctx.res, 200, sessionResource(session.info()));
}

const ForkBody = z.object({ identifier: z.string() }).strict();

/** POST session/fork `{ identifier }`: 201 with the new session. */
export async function handleFork(state: ServerState, ctx: RequestContext): Promise<void> {
  const pool = localPool(state, ctx);
  const identifier = identifierOf(ctx);
  const target = assertIdentifier((await body(state, ctx, ForkBody)).identifier);
  const fork = await existing(pool, identifier).fork(target);
  sendJson(ctx.res, 201, sessionResource(fork.info()));
}

/** POST session/snapshot: 201 `{ snapshotId }`; the session keeps running (or stays paused). */
export async function handleSnapshot(state: ServerState, ctx: RequestContext): Promise<void> {
  const pool = localPool(state, ctx);
  const identifier = identifierOf(ctx);
  const snapshotId = await pool.snapshot(identifier);
  sendJson(ctx.res, 201, { snapshotId, identifier });
}

const FromSnapshotBody = z.object({ snapshotId: z.string().max(64) }).strict();

/** POST session/fromSnapshot `{ snapshotId }`: 201 with the identifier's new session, a fork of the snapshot. */
export async function handleFromSnapshot(state: ServerState, ctx: RequestContext): Promise<void> {
  const pool = localPool(state, ctx);
  const identifier = identifierOf(ctx);
  const { snapshotId } = await body(state, ctx, FromSnapshotBody);
  const session = await pool.acquire(identifier, { from: snapshotId, signal: ctx.signal });
  sendJson(ctx.res, 201, sessionResource(session.info()));
}

/** GET snapshots: the pool's named snapshots. */
export function handleListSnapshots(state: ServerState, ctx: RequestContext): void {
  const pool = localPool(state, ctx);
  const value = pool.snapshots().map((s) => ({
    snapshotId: s.id,
    identifier: s.identifier,
    createdAt: s.createdAt.toISOString(),
    bytes: s.bytes,
    lost: s.lost.map((l) => ({ ...l })),
  }));
  sendJson(ctx.res, 200, { value });
}

/** DELETE snapshots/{id}: 204, or 404 when there is none. */
export function handleDeleteSnapshot(state: ServerState, ctx: RequestContext): void {
  const pool = localPool(state, ctx);
  if (!pool.deleteSnapshot(ctx.route.param ?? ''))
    throw new HttpError(404, 'SnapshotNotFound', 'no snapshot with this id in the pool');
  sendEmpty(ctx.res, 204);
}
