/** Small helpers that write responses; every response carries the request id (set by the dispatcher). */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import type { Principal } from './auth.js';
import type { RouteMatch } from './routes.js';

/** What a handler gets for one request. */
export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  readonly route: RouteMatch;
  readonly requestId: string;
  readonly principal: Principal;
  /** `scheme://host[:port]` the caller used, for `poolManagementEndpoint` and `Operation-Location`. */
  readonly baseUrl: string;
  /** Aborted when the client goes away. */
  readonly signal: AbortSignal;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendEmpty(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  res.writeHead(status, headers);
  res.end();
}

/** Stream an async byte source as the response body. */
export async function sendStream(
  res: ServerResponse,
  status: number,
  headers: Record<string, string | number>,
  body: AsyncIterable<Uint8Array>,
): Promise<void> {
  res.writeHead(status, headers);
  await pipeline(Readable.from(body, { objectMode: false }), res);
}
