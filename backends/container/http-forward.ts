/**
 * HTTP to a session's port over the forwarder's unix socket, as WHATWG `Request` → `Response`.
 * Bodies stream both ways (uploads are piped, responses are handed out as they arrive, so
 * server-sent events work); hop-by-hop headers are dropped as a proxy must.
 */

import { request as httpRequest, type Agent, type IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';

import { AbortedError, BackendError, InvalidRequestError } from '../../src/errors.js';
import { endToEndHeaders } from '../../src/hop-by-hop.js';

function toResponse(res: IncomingMessage, method: string): Response {
  const headers = new Headers();
  const raw = res.rawHeaders;
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i] as string, raw[i + 1] as string]);
  for (const [name, value] of endToEndHeaders(pairs, res.headers.connection)) {
    try {
      headers.append(name, value);
    } catch {
      // A header value the WHATWG Headers class refuses (the server is untrusted): drop it.
    }
  }
  const status = res.statusCode ?? 502;
  const noBody = method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
  if (noBody) {
    res.resume();
    return new Response(null, { status, statusText: res.statusMessage ?? '', headers });
  }
  const body = Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>;
  return new Response(body, { status, statusText: res.statusMessage ?? '', headers });
}

export interface ForwardOptions {
  readonly socketPath: string;
  readonly agent: Agent;
  /** Value of the Host header the server sees. */
  readonly host: string;
  readonly signal?: AbortSignal | undefined;
}

/** Forward one request; resolves when the response head arrives (the body keeps streaming). */
export function forwardFetch(request: Request, options: ForwardOptions): Promise<Response> {
  let url: URL;
  try {
    url = new URL(request.url);
  } catch (error) {
    return Promise.reject(new InvalidRequestError(`invalid request URL: ${request.url}`, { cause: error }));
  }
  // WHATWG Headers already joins repeated fields (set-cookie aside, which requests do not carry).
  const headers: Record<string, string> = {};
  for (const [name, value] of endToEndHeaders(request.headers.entries(), request.headers.get('connection'))) {
    if (name !== 'host') headers[name] = value;
  }
  headers.host = options.host;
  return new Promise<Response>((resolve, reject) => {
    const signals = [request.signal, options.signal].filter((s): s is AbortSignal => s !== undefined);
    const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
    if (signal?.aborted) {
      reject(new AbortedError('the forwarded request was aborted'));
      return;
    }
    let req: ReturnType<typeof httpRequest>;
    try {
      req = httpRequest({
        socketPath: options.socketPath,
        agent: options.agent,
        method: request.method,
        path: `${url.pathname}${url.search}`,
        headers,
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (error) {
      reject(new InvalidRequestError(`cannot forward this request: ${(error as Error).message}`, { cause: error }));
      return;
    }
    req.once('response', (res) => resolve(toResponse(res, request.method)));
    // 'on', not 'once': a request may emit a second error (body failure after the response head).
    req.on('error', (error) => {
      if (signal?.aborted) reject(new AbortedError('the forwarded request was aborted', { cause: error }));
      else reject(new BackendError(`forwarding to the session failed: ${error.message}`, { cause: error }));
    });
    if (request.body === null) {
      req.end();
    } else {
      const body = Readable.fromWeb(request.body as unknown as NodeReadableStream<Uint8Array>);
      body.on('error', (error) => req.destroy(error));
      body.pipe(req);
    }
  });
}

/** One HTTP GET probe: true on a 2xx/3xx answer within the timeout. */
export function httpProbe(socketPath: string, path: string, host: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest({ socketPath, path, method: 'GET', headers: { host, 'user-agent': 'sandpool-probe' }, agent: false });
    const timer = setTimeout(() => req.destroy(), timeoutMs);
    req.once('response', (res) => {
      clearTimeout(timer);
      res.resume();
      const code = res.statusCode ?? 0;
      resolve(code >= 200 && code < 400);
    });
    req.on('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
    req.end();
  });
}
