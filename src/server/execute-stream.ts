/**
 * `POST /pools/NAME/code/execute/stream?identifier=ID` (a sandpool extension): the Gen 1 execute
 * body, answered as server-sent events while the code runs, one event per chunk:
 * `stdout`/`stderr` `{text}`, `display` `{image}`, `result` `{result}`, then `end` with the final
 * fields `execute` returns (status, stdout, stderr, result, images, …), or `error` `{code, message}`
 * when the execution could not run. A client that disconnects interrupts the execution.
 */

import type { ServerResponse } from 'node:http';

import { SandpoolError } from '../errors.js';
import type { ExecutionEvent } from '../session-types.js';
import { toExecuteOptions } from './execute-handlers.js';
import { badRequest, toErrorResponse } from './http-errors.js';
import type { RequestContext } from './http-io.js';
import { parseExecuteBody, readJsonObject } from './request-body.js';
import { acquire, identifierOf, poolEntry, type ServerState } from './server-state.js';

/** A comment line this often keeps proxies from cutting a quiet stream. */
const KEEPALIVE_MS = 15_000;

/** The event's data without its `type` (which is the SSE event name); errors as `{code, message}`. */
function eventData(event: ExecutionEvent): Record<string, unknown> {
  const { type: _type, ...rest } = event as ExecutionEvent & Record<string, unknown>;
  if (event.type === 'end' && event.error !== undefined) {
    return { ...rest, error: { code: event.error.code, message: event.error.message } };
  }
  return rest;
}

function write(res: ServerResponse, text: string): void {
  if (!res.writableEnded && !res.destroyed) res.write(text);
}

function sendEvent(res: ServerResponse, name: string, data: unknown): void {
  write(res, `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
}

export async function handleExecuteStream(state: ServerState, ctx: RequestContext): Promise<void> {
  const pool = poolEntry(state, ctx).pool;
  const body = parseExecuteBody(await readJsonObject(ctx.req, state.maxJsonBytes));
  if (body.executionType === 'Asynchronous') {
    throw badRequest('the stream route runs executions synchronously; leave executionType out or use POST executions');
  }
  const identifier = identifierOf(ctx, body.identifier);
  const shell = pool.options.containerType === 'Shell';
  const options = toExecuteOptions(body, shell, pool.options.limits.executionTimeoutSeconds);
  const session = await acquire(state, pool, identifier, ctx, body.env);

  const { res } = ctx;
  // Headers go at once: a quiet execution must not leave the client without an answer.
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    'x-accel-buffering': 'no',
  });
  res.socket?.setNoDelay(true);
  res.flushHeaders();
  const keepalive = setInterval(() => write(res, ': keep-alive\n\n'), KEEPALIVE_MS);
  keepalive.unref();
  try {
    for await (const event of session.executeStream(options, { signal: ctx.signal })) {
      sendEvent(res, event.type, eventData(event));
    }
  } catch (error) {
    if (!ctx.signal.aborted) {
      // The same envelope as a failed request: Azure code, message, innererror with the sandpool code.
      const { traceId: _trace, ...envelope } = toErrorResponse(error, ctx.requestId).body.error;
      sendEvent(res, 'error', envelope);
      if (!SandpoolError.is(error)) {
        state.log({ level: 'error', msg: 'stream failed', requestId: ctx.requestId, error: (error as Error)?.message });
      }
    }
  } finally {
    clearInterval(keepalive);
    if (!res.writableEnded) res.end();
  }
}
