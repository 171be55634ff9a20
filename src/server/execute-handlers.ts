/**
 * Code execution in all three generations (Gen 0 `python/execute`, Gen 1 `code/execute`, Gen 2
 * `executions` with asynchronous mode), for code-interpreter and Shell pools. The request is
 * normalised once; the response is shaped by route.
 */

import { randomUUID } from 'node:crypto';

import { SandpoolError } from '../errors.js';
import type { ExecuteOptions } from '../session-types.js';
import { ExecutionStore } from './execution-store.js';
import { HttpError, badRequest, toErrorResponse } from './http-errors.js';
import { sendJson, type RequestContext } from './http-io.js';
import { parseExecuteBody, readJsonObject, type ExecuteBody } from './request-body.js';
import { gen0Execution, gen1Execution, gen2Errored, gen2Execution, gen2Pending } from './shapes.js';
import { acquire, identifierOf, poolEntry, type ServerState } from './server-state.js';

const OPERATION_ID = /^[A-Za-z0-9._~-]{1,128}$/;

export function toExecuteOptions(body: ExecuteBody, shell: boolean, maxTimeout: number): ExecuteOptions {
  let code = body.code;
  if (shell) {
    code = body.shellCommand ?? body.code;
    if (code === undefined && body.execCommandAndArgs === undefined) {
      throw badRequest('a Shell execution needs shellCommand or execCommandAndArgs', 'SessionPropertiesMissing');
    }
  } else {
    if (body.shellCommand !== undefined || body.execCommandAndArgs !== undefined) {
      throw new HttpError(400, 'SessionRequestNotSupported', 'shellCommand and execCommandAndArgs are only for Shell pools');
    }
    if (code === undefined) throw badRequest('the request has no code (or pythonCode)', 'SessionPropertiesMissing');
  }
  return {
    code: code ?? '',
    // Azure clips every execution at its platform limit; here the pool's limit plays that role.
    timeoutInSeconds: Math.min(body.timeoutInSeconds ?? maxTimeout, maxTimeout),
    ...(body.execCommandAndArgs === undefined ? {} : { argv: body.execCommandAndArgs }),
    ...(body.stdin === undefined ? {} : { stdin: body.stdin }),
    ...(body.outputStreamsMaxLength === undefined ? {} : { outputMaxBytes: body.outputStreamsMaxLength }),
  };
}

function wantsStringResult(state: ServerState, ctx: RequestContext): boolean {
  if (state.stringifyExecutionResult !== 'auto') return state.stringifyExecutionResult === 'always';
  const ua = ctx.req.headers['user-agent'] ?? '';
  return /Semantic-Kernel\/.*Language=dotnet/i.test(ua);
}

/** POST python/execute | code/execute | execute | executions. */
export async function handleExecute(state: ServerState, ctx: RequestContext, generation: 0 | 1 | 2): Promise<void> {
  const entry = poolEntry(state, ctx);
  const pool = entry.pool;
  const body = parseExecuteBody(await readJsonObject(ctx.req, state.maxJsonBytes));
  const identifier = identifierOf(ctx, body.identifier);
  const shell = pool.options.containerType === 'Shell';
  const options = toExecuteOptions(body, shell, pool.options.limits.executionTimeoutSeconds);
  const headerId = ctx.req.headers['operation-id'];
  if (headerId !== undefined && (typeof headerId !== 'string' || !OPERATION_ID.test(headerId))) {
    throw badRequest('operation-id must be 1–128 letters, digits, ".", "_", "~" or "-"');
  }
  const session = await acquire(state, pool, identifier, ctx, body.env);

  if (generation === 2 && body.executionType === 'Asynchronous') {
    const id = headerId ?? state.cluster?.executionId(randomUUID()) ?? randomUUID();
    const key = ExecutionStore.key(pool.name, id);
    if (state.executions.has(key)) throw new HttpError(409, 'Conflict', `an execution with operation-id "${id}" already exists`);
    state.executions.set(key, { state: 'running', id, identifier, at: Date.now() });
    const work = session.execute(options).then(
      (result) =>
        state.executions.set(key, {
          state: 'done',
          id,
          identifier,
          at: Date.now(),
          result: { ...result, id },
          executionType: 'Asynchronous',
        }),
      (error: unknown) => {
        const mapped = toErrorResponse(error, ctx.requestId).body.error;
        state.executions.set(key, {
          state: 'error',
          id,
          identifier,
          at: Date.now(),
          code: mapped.code,
          message: SandpoolError.is(error) ? error.message : mapped.message,
        });
      },
    );
    state.background.add(work);
    void work.finally(() => state.background.delete(work));
    const location = `${executionsPath(ctx)}/${encodeURIComponent(id)}?${locationQuery(ctx, identifier)}`;
    sendJson(ctx.res, 202, gen2Pending(id, identifier, 'Running'), {
      'operation-id': id,
      'operation-location': `${ctx.baseUrl}${location}`,
    });
    return;
  }

  const result = await session.execute(options);
  if (generation === 0) return sendJson(ctx.res, 200, gen0Execution(result));
  if (generation === 1) return sendJson(ctx.res, 200, gen1Execution(result));
  const id = headerId ?? state.cluster?.executionId(result.id) ?? result.id;
  state.executions.set(ExecutionStore.key(pool.name, id), {
    state: 'done',
    id,
    identifier,
    at: Date.now(),
    result: { ...result, id },
    executionType: 'Synchronous',
  });
  sendJson(
    ctx.res,
    200,
    gen2Execution(
      { ...result, id },
      { identifier, executionType: 'Synchronous', shell, stringifyResult: wantsStringResult(state, ctx) },
    ),
    { 'operation-id': id },
  );
}

/** GET executions/{id} (cluster mode: from the member the id names, when that is another). */
export async function handleGetExecution(state: ServerState, ctx: RequestContext): Promise<void> {
  const entry = poolEntry(state, ctx);
  const id = ctx.route.param ?? '';
  const identifier = ctx.url.searchParams.get('identifier') ?? undefined;
  const record =
    state.executions.get(ExecutionStore.key(entry.pool.name, id), identifier) ??
    (await state.cluster?.remoteExecution(entry.pool.name, id, identifier));
  if (record === undefined) {
    throw new HttpError(404, 'ExecutionNotFound', 'no execution with this id for this identifier');
  }
  if (record.state === 'running') {
    sendJson(ctx.res, 200, gen2Pending(record.id, record.identifier, 'Running'));
    return;
  }
  if (record.state === 'error') {
    sendJson(ctx.res, 200, gen2Errored(record.id, record.identifier, record.code, record.message));
    return;
  }
  sendJson(
    ctx.res,
    200,
    gen2Execution(record.result, {
      identifier: record.identifier,
      executionType: record.executionType,
      shell: entry.pool.options.containerType === 'Shell',
      stringifyResult: wantsStringResult(state, ctx),
    }),
  );
}

/** The request path up to and including `executions`, with `//` collapsed. */
function executionsPath(ctx: RequestContext): string {
  return ctx.url.pathname.replace(/\/{2,}/g, '/').replace(/\/+$/, '');
}

function locationQuery(ctx: RequestContext, identifier: string): string {
  const q = new URLSearchParams();
  const version = ctx.url.searchParams.get('api-version');
  if (version !== null) q.set('api-version', version);
  q.set('identifier', identifier);
  return q.toString();
}
