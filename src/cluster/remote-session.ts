/**
 * A session that lives on another member: every call is forwarded to the owner over the peer
 * wire, with the ownership epoch it was looked up with, so an owner that no longer holds that
 * epoch refuses instead of answering for a session that is gone. It rejects like a local session
 * does (the owner's typed errors are rebuilt), plus `ClusterUnavailableError` when the owner cannot
 * be reached.
 */

import type { Duplex } from 'node:stream';

import type { FileInfo } from '../backend.js';
import { UnsupportedError } from '../errors.js';
import { HOP_BY_HOP_HEADERS } from '../hop-by-hop.js';
import { toByteChunks, type ByteSource } from '../pool/byte-source.js';
import { replayOutput, streamExecution } from '../pool/execution-stream.js';
import type {
  ExecuteOptions,
  ExecuteStreamOptions,
  ExecutionEvent,
  ExecutionResult,
  SessionInfo,
  SessionState,
} from '../session-types.js';
import type { Ownership } from './ownership-store.js';
import { errorFromAnswer, readText, type PeerClient } from './peer-client.js';
import {
  FILE_HEADER,
  PEER_PREFIX,
  SESSION_HEADER,
  TARGET_HEADER,
  WireFileInfoSchema,
  WireFileListSchema,
  executionFromWire,
  parseSessionInfo,
} from './peer-wire.js';
import type { SessionApi } from './session-api.js';

/** Request headers never carried to a session: hop-by-hop ones and credentials meant for a server. */
const NOT_FORWARDED: ReadonlySet<string> = new Set([...HOP_BY_HOP_HEADERS, 'host', 'content-length', 'authorization', 'cookie']);

/** Extra time an execution's answer may take beyond the execution's own limit. */
const EXECUTE_SLACK_MS = 30_000;

export class RemoteSession implements SessionApi {
  readonly #client: PeerClient;
  readonly #pool: string;
  readonly #identifier: string;
  readonly #owner: Ownership;
  #info: SessionInfo | undefined;

  constructor(client: PeerClient, pool: string, identifier: string, owner: Ownership, info?: SessionInfo) {
    this.#client = client;
    this.#pool = pool;
    this.#identifier = identifier;
    this.#owner = owner;
    this.#info = info;
  }

  get identifier(): string {
    return this.#identifier;
  }

  /** The owner's session id once an answer told it; until then the owner and epoch. */
  get id(): string {
    return this.#info?.sessionId ?? `${this.#owner.member}:${this.#owner.epoch}`;
  }

  get state(): SessionState {
    return this.#info?.state ?? 'Allocated';
  }

  /** Where the session lives. */
  get owner(): Ownership {
    return this.#owner;
  }

  /**
   * The owner runs the execution; `onOutput` gets the output when the answer arrives (the peer
   * wire does not stream yet), in the same pieces a local session's caller would join.
   */
  async execute(options: ExecuteOptions): Promise<ExecutionResult> {
    const { signal, onOutput, ...wire } = options;
    const limitMs = (options.timeoutInSeconds ?? 3600) * 1000;
    const body = Buffer.from(JSON.stringify(wire));
    const { body: answer } = await this.#json(
      'POST',
      'execute',
      {},
      {
        body,
        headers: { 'content-type': 'application/json' },
        idleTimeoutMs: limitMs + EXECUTE_SLACK_MS,
        signal,
      },
    );
    const result = executionFromWire(answer);
    if (onOutput !== undefined) replayOutput(result, onOutput);
    return result;
  }

  /** Output arrives with the answer (see `execute`), then the value and `end`. */
  executeStream(options: ExecuteOptions, streamOptions?: ExecuteStreamOptions): AsyncIterable<ExecutionEvent> {
    return streamExecution((o) => this.execute(o), options, streamOptions);
  }

  async uploadFile(path: string, data: ByteSource): Promise<FileInfo> {
    const { body } = await this.#json(
      'PUT',
      'files',
      { path },
      {
        body: toByteChunks(data),
        headers: { 'content-type': 'application/octet-stream' },
      },
    );
    return WireFileInfoSchema.parse(body);
  }

  async listFiles(options: { path?: string | undefined; recursive?: boolean | undefined } = {}): Promise<FileInfo[]> {
    const query: Record<string, string> = {};
    if (options.path !== undefined) query['path'] = options.path;
    if (options.recursive === true) query['recursive'] = 'true';
    const { body } = await this.#json('GET', 'files', query);
    return WireFileListSchema.parse(body);
  }

  async fileInfo(path: string): Promise<FileInfo> {
    const { body } = await this.#json('GET', 'file', { path });
    return WireFileInfoSchema.parse(body);
  }

  async downloadFile(path: string): Promise<{ info: FileInfo; body: AsyncIterable<Uint8Array> }> {
    const response = await this.#client.send(this.#owner.url, { method: 'GET', path: this.#path('content', { path }) });
    if ((response.statusCode ?? 500) >= 400) throw errorFromAnswer(response, await readText(response, 1 << 20));
    this.#remember(response.headers[SESSION_HEADER]);
    const header = response.headers[FILE_HEADER];
    const info = WireFileInfoSchema.parse(JSON.parse(decodeURIComponent(typeof header === 'string' ? header : '')));
    return { info, body: response };
  }

  async deleteFile(path: string): Promise<void> {
    await this.#json('DELETE', 'file', { path });
  }

  /** Custom containers: the request goes to the owner, which hands it to the session's container. */
  async fetch(request: Request): Promise<Response> {
    const target = new URL(request.url);
    const headers: Record<string, string> = { [TARGET_HEADER]: `${target.pathname}${target.search}` };
    request.headers.forEach((value, name) => {
      if (!NOT_FORWARDED.has(name) && !name.startsWith('x-sandpool-')) headers[name] = value;
    });
    const hasBody = request.body !== null && request.method !== 'GET' && request.method !== 'HEAD';
    const response = await this.#client.send(this.#owner.url, {
      method: request.method,
      path: this.#path('fetch', {}),
      headers,
      body: hasBody ? (request.body as unknown as AsyncIterable<Uint8Array>) : undefined,
      signal: request.signal,
    });
    // The owner's own failure (not the container's answer) is marked, so it rejects like locally.
    if (response.headers[SESSION_HEADER] === undefined && (response.statusCode ?? 500) >= 400) {
      throw errorFromAnswer(response, await readText(response, 1 << 20));
    }
    this.#remember(response.headers[SESSION_HEADER]);
    const out = new Headers();
    for (const [name, value] of Object.entries(response.headers)) {
      // x-sandpool-* are the member wire's own (the owner's snapshot, its member name), not the container's.
      if (value === undefined || name.startsWith('x-sandpool-') || NOT_FORWARDED.has(name)) continue;
      for (const v of Array.isArray(value) ? value : [value]) out.append(name, v);
    }
    const status = response.statusCode ?? 502;
    const empty = status === 204 || status === 304 || request.method === 'HEAD';
    if (empty) response.resume();
    const body = empty ? null : (ReadableStream.from(response) as ReadableStream<Uint8Array>);
    return new Response(body, { status, statusText: response.statusMessage ?? '', headers: out });
  }

  connect(): Promise<Duplex> {
    return Promise.reject(
      new UnsupportedError('raw connections (WebSocket upgrades) reach a session only on the member that owns it'),
    );
  }

  async stop(): Promise<void> {
    await this.#json('POST', 'stop', {});
  }

  /** The last snapshot the owner sent (refreshed by every answer; `ClusterPool.get` fetches one). */
  info(): SessionInfo {
    if (this.#info !== undefined) return this.#info;
    return {
      identifier: this.#identifier,
      sessionId: this.id,
      state: 'Allocated',
      etag: this.id,
      createdAt: new Date(0),
      allocatedAt: undefined,
      lastAccessedAt: undefined,
      expiresAt: undefined,
      executionsInFlight: 0,
    };
  }

  /** Fetch the owner's current snapshot. */
  async refresh(): Promise<SessionInfo> {
    const { body } = await this.#json('GET', 'info', {});
    this.#info = parseSessionInfo(body);
    return this.#info;
  }

  #path(operation: string, query: Record<string, string>): string {
    const q = new URLSearchParams({ identifier: this.#identifier, epoch: this.#owner.epoch, ...query });
    return `${PEER_PREFIX}pools/${encodeURIComponent(this.#pool)}/session/${operation}?${q.toString()}`;
  }

  async #json(
    method: string,
    operation: string,
    query: Record<string, string>,
    extra: Partial<Parameters<PeerClient['json']>[1]> = {},
  ): Promise<{ body: unknown }> {
    const { body, response } = await this.#client.json(this.#owner.url, { method, path: this.#path(operation, query), ...extra });
    this.#remember(response.headers[SESSION_HEADER]);
    return { body };
  }

  #remember(header: string | string[] | undefined): void {
    if (typeof header !== 'string') return;
    try {
      this.#info = parseSessionInfo(JSON.parse(decodeURIComponent(header)));
    } catch {
      // A malformed snapshot only costs the cached info.
    }
  }
}
