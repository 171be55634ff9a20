/**
 * HTTP from one member to another: signed requests over keep-alive connections, a short connect
 * deadline (an owner that is down or cut off must turn into a quick, typed 503, not a long hang),
 * an idle deadline on answers, and errors rebuilt as the typed errors the owner raised.
 */

import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';

import { AbortedError, ClusterUnavailableError, SandpoolError } from '../errors.js';
import { AUTH_HEADER, WireErrorBodySchema, fromWireError, signRequest } from './peer-wire.js';

export interface PeerClientOptions {
  /** This member's node id (the signer). */
  readonly member: string;
  readonly secret: string;
  /** Give up connecting to a member after this long. @default 2000 */
  readonly connectTimeoutMs?: number | undefined;
}

export interface PeerRequest {
  readonly method: string;
  /** Path and query, starting with the peer prefix. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string | string[]>> | undefined;
  readonly body?: Uint8Array | AsyncIterable<Uint8Array> | undefined;
  /** Fail when the answer is silent this long. @default 60 000 */
  readonly idleTimeoutMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

const MAX_JSON_ANSWER = 64 * 1024 * 1024;

function unreachable(url: string, why: string): ClusterUnavailableError {
  return new ClusterUnavailableError(`the owning member ${url} is unreachable (${why})`, { details: { reason: 'owner' } });
}

export class PeerClient {
  readonly #options: PeerClientOptions;
  readonly #http = new HttpAgent({ keepAlive: true, maxSockets: 256 });
  readonly #https = new HttpsAgent({ keepAlive: true, maxSockets: 256 });

  constructor(options: PeerClientOptions) {
    this.#options = options;
  }

  /** Send a request; resolves with the answer once its headers are in (any status). */
  async send(baseUrl: string, request: PeerRequest): Promise<IncomingMessage> {
    try {
      return await this.#send(baseUrl, request);
    } catch (error) {
      // A kept-alive connection the other member had already closed (it idled out, or the network
      // was down when the close went by) fails before the request was read: send it once more on
      // a new connection, when the body can be sent again.
      const stale = (error as { staleConnection?: boolean }).staleConnection === true;
      if (!stale || !(request.body === undefined || request.body instanceof Uint8Array)) throw error;
      return this.#send(baseUrl, request);
    }
  }

  #send(baseUrl: string, request: PeerRequest): Promise<IncomingMessage> {
    const url = new URL(request.path, baseUrl);
    const tls = url.protocol === 'https:';
    const method = request.method.toUpperCase();
    const headers: Record<string, string | string[]> = {
      ...request.headers,
      [AUTH_HEADER]: signRequest(this.#options.secret, this.#options.member, method, `${url.pathname}${url.search}`),
    };
    if (request.body instanceof Uint8Array) headers['content-length'] = String(request.body.byteLength);
    return new Promise<IncomingMessage>((resolve, reject) => {
      if (request.signal?.aborted === true) {
        reject(new AbortedError());
        return;
      }
      const req = (tls ? httpsRequest : httpRequest)(url, {
        method,
        headers,
        agent: tls ? this.#https : this.#http,
        signal: request.signal,
      });
      let settled = false;
      const fail = (error: SandpoolError): void => {
        // Also after the headers: destroying the request errors the answer's body for its reader.
        req.destroy(error);
        if (settled) return;
        settled = true;
        reject(error);
      };
      const connectTimeout = this.#options.connectTimeoutMs ?? 2000;
      req.on('socket', (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(
          () => fail(unreachable(url.origin, `no connection within ${connectTimeout} ms`)),
          connectTimeout,
        );
        timer.unref();
        socket.once('connect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      req.setTimeout(request.idleTimeoutMs ?? 60_000, () => fail(unreachable(url.origin, 'the answer stalled')));
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (request.signal?.aborted === true) return fail(new AbortedError());
        const failure = unreachable(url.origin, error.code ?? error.message);
        if (req.reusedSocket && (error.code === 'ECONNRESET' || error.code === 'EPIPE')) {
          Object.defineProperty(failure, 'staleConnection', { value: true });
        }
        fail(failure);
      });
      req.on('response', (res) => {
        if (settled) {
          res.resume();
          return;
        }
        settled = true;
        // The idle deadline keeps guarding the body; the caller consumes it.
        resolve(res);
      });
      const body = request.body;
      if (body === undefined) req.end();
      else if (body instanceof Uint8Array) req.end(body);
      else {
        const source = Readable.from(body, { objectMode: false });
        source.on('error', (error) => fail(SandpoolError.is(error) ? error : unreachable(url.origin, String(error))));
        source.pipe(req);
      }
    });
  }

  /** Send and read a JSON answer; a non-2xx answer rejects with the owner's typed error. */
  async json(baseUrl: string, request: PeerRequest): Promise<{ body: unknown; response: IncomingMessage }> {
    const response = await this.send(baseUrl, request);
    const text = await readText(response, MAX_JSON_ANSWER);
    if (response.statusCode !== undefined && response.statusCode >= 400) throw errorFromAnswer(response, text);
    if (response.statusCode === 204 || text === '') return { body: undefined, response };
    try {
      return { body: JSON.parse(text) as unknown, response };
    } catch {
      throw unreachable(baseUrl, 'the answer was not JSON');
    }
  }

  close(): void {
    this.#http.destroy();
    this.#https.destroy();
  }
}

/** The typed error of a failed answer (its body is the wire error envelope). */
export function errorFromAnswer(response: IncomingMessage, text: string): SandpoolError {
  try {
    const parsed = WireErrorBodySchema.safeParse(JSON.parse(text));
    if (parsed.success) return fromWireError(parsed.data.error);
  } catch {
    // Not ours (a proxy's error page): say so below.
  }
  return new ClusterUnavailableError(`the owning member answered HTTP ${response.statusCode ?? '?'}`, {
    details: { reason: 'owner' },
  });
}

export async function readText(stream: AsyncIterable<Uint8Array>, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      size += chunk.byteLength;
      if (size > max)
        throw new ClusterUnavailableError('a member answered with more than the cap', { details: { reason: 'owner' } });
      chunks.push(Buffer.from(chunk));
    }
  } catch (error) {
    if (SandpoolError.is(error)) throw error;
    throw new ClusterUnavailableError('the connection to the owning member broke', {
      details: { reason: 'owner' },
      cause: error,
    });
  }
  return Buffer.concat(chunks).toString('utf8');
}
