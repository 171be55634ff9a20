/**
 * A sandbox's lifetime on the control plane: `setTimeout` (a deadline, moved either way), the
 * older `refreshes` keep-alive, `connect` (extends a running sandbox, resumes a paused one) and
 * `pause`. Pausing is the pool's `session.pause()`: the session's state goes to disk and its
 * memory is freed; a paused sandbox has no deadline until it is resumed.
 */

import { z } from 'zod';

import { sendEmpty, sendJson } from '../http-io.js';
import { readJsonObject } from '../request-body.js';
import type { E2bContext, E2bRequest } from './context.js';
import { E2bError, badArgument, notFound, parseOrRefuse } from './errors.js';
import type { LiveSandbox } from './sandboxes.js';
import { sandboxAnswer } from './shapes.js';

const TimeoutBody = z.object({ timeout: z.number().int().min(0) });
const RefreshBody = z.object({ duration: z.number().int().min(0).max(3600).nullish() });
const ConnectBody = z.object({ timeout: z.number().int().min(0).nullish(), memory: z.boolean().nullish() });
const PauseBody = z.object({ memory: z.boolean().nullish() });

/** A timeout in seconds, within the server's maximum. */
export function timeoutSeconds(ctx: E2bContext, value: number): number {
  if (value > ctx.options.maxTimeoutSeconds) {
    throw badArgument(`timeout cannot be longer than ${ctx.options.maxTimeoutSeconds} seconds on this server`);
  }
  return value;
}

/** The sandbox, running or paused, or E2B's 404. */
export function liveSandbox(ctx: E2bContext, r: E2bRequest, sandboxId: string): LiveSandbox {
  const found = ctx.sandboxes.find(sandboxId);
  if (found === undefined) throw notFound(`sandbox "${sandboxId.slice(0, 64)}" not found`);
  r.audit({ pool: found.pool.name });
  return found;
}

async function extendTo(ctx: E2bContext, found: LiveSandbox, seconds: number): Promise<void> {
  const endAt = Date.now() + seconds * 1000;
  if (endAt > found.sandbox.endAt.getTime()) await ctx.sandboxes.setEndAt(found, new Date(endAt));
}

export async function setTimeoutOf(ctx: E2bContext, r: E2bRequest, id: string): Promise<void> {
  const body = parseOrRefuse(TimeoutBody, await readJsonObject(r.req, ctx.state.maxJsonBytes));
  const found = liveSandbox(ctx, r, id);
  const seconds = timeoutSeconds(ctx, body.timeout);
  found.sandbox.timeoutSeconds = seconds;
  if (found.session.state === 'Paused') {
    // Counted from the resume, as E2B does for a paused sandbox.
    sendEmpty(r.res, 204);
    return;
  }
  await ctx.sandboxes.setEndAt(found, new Date(Date.now() + seconds * 1000));
  sendEmpty(r.res, 204);
}

/** The older keep-alive: extends to `duration` from now, never shortens. */
export async function refresh(ctx: E2bContext, r: E2bRequest, id: string): Promise<void> {
  const body = parseOrRefuse(RefreshBody, await readJsonObject(r.req, ctx.state.maxJsonBytes));
  const found = liveSandbox(ctx, r, id);
  if (found.session.state !== 'Paused') await extendTo(ctx, found, body.duration ?? ctx.options.defaultTimeoutSeconds);
  sendEmpty(r.res, 204);
}

/** Bring a paused sandbox back; its deadline counts again from now. */
export async function resumeSandbox(ctx: E2bContext, found: LiveSandbox, seconds = found.sandbox.timeoutSeconds): Promise<void> {
  await found.session.resume();
  await ctx.sandboxes.setEndAt(found, new Date(Date.now() + seconds * 1000));
}

export async function connect(ctx: E2bContext, r: E2bRequest, id: string): Promise<void> {
  const body = parseOrRefuse(ConnectBody, await readJsonObject(r.req, ctx.state.maxJsonBytes));
  const found = liveSandbox(ctx, r, id);
  const requested = body.timeout === undefined || body.timeout === null ? undefined : timeoutSeconds(ctx, body.timeout);
  if (found.session.state === 'Paused') {
    if (requested !== undefined) found.sandbox.timeoutSeconds = requested;
    await resumeSandbox(ctx, found);
    sendJson(r.res, 201, sandboxAnswer(found));
    return;
  }
  // A running sandbox keeps its deadline unless the connect asks for a later one.
  if (requested !== undefined) await extendTo(ctx, found, requested);
  sendJson(r.res, 200, sandboxAnswer(found));
}

/**
 * POST /sandboxes/{id}/pause: 204, or 409 when already paused (the SDK answers `false`). The
 * state kept is what the backend can keep (`memory: false` is not needed: it never keeps more).
 */
export async function pause(ctx: E2bContext, r: E2bRequest, id: string): Promise<void> {
  parseOrRefuse(PauseBody, await readJsonObject(r.req, ctx.state.maxJsonBytes));
  const found = liveSandbox(ctx, r, id);
  if (found.session.state === 'Paused') throw new E2bError(409, 'already_exists', `sandbox "${id}" is already paused`);
  await found.session.pause();
  ctx.sandboxes.suspend(found.sandbox);
  sendEmpty(r.res, 204);
}
