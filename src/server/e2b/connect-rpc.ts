/**
 * The Connect protocol as envd's clients speak it (connectrpc.com/docs/protocol), JSON codec only:
 * the E2B SDK builds its transport with `useBinaryFormat: false`.
 *
 * - Unary: `POST /pkg.Service/Method`, `Content-Type: application/json`, the request message as the
 *   body; the answer is the response message with 200, or a Connect error JSON with its status.
 * - Server streaming: `Content-Type: application/connect+json`; the request and every response
 *   message travel in envelopes (1 flag byte, 4-byte big-endian length, JSON). The stream ends with
 *   an end-stream envelope (flag 0x02) carrying `{}` or `{"error": {"code", "message"}}`.
 *
 * Messages use proto3's JSON mapping: lowerCamelCase field names, int64 as strings, bytes as
 * base64, enums by name, Timestamps as RFC 3339.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';

import { UntrustedJsonError, parseUntrustedJsonText } from '../../untrusted-json.js';
import { readBody } from '../request-body.js';
import { CONNECT_HTTP_STATUS, E2bError, badArgument } from './errors.js';

const END_STREAM = 0x02;
const COMPRESSED = 0x01;

export type RpcKind = 'unary' | 'stream';

/** The kind of call the request's content type announces, or a 415 for anything else. */
export function rpcKind(req: IncomingMessage): RpcKind {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/json') return 'unary';
  if (type === 'application/connect+json') return 'stream';
  throw new E2bError(415, 'invalid_argument', `unsupported content type "${type.slice(0, 100)}": only the JSON codec is served`);
}

function asObject(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = text.trim() === '' ? {} : parseUntrustedJsonText(text);
  } catch (error) {
    throw badArgument(`the request message ${error instanceof UntrustedJsonError ? error.message : 'is not valid JSON'}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw badArgument('the request message must be a JSON object');
  return value as Record<string, unknown>;
}

/** Read the request message of a unary call (JSON body) or of a server-streaming call (one envelope). */
export async function readRequestMessage(
  req: IncomingMessage,
  kind: RpcKind,
  maxBytes: number,
): Promise<Record<string, unknown>> {
  const body = await readBody(req, maxBytes);
  if (kind === 'unary') return asObject(body.toString('utf8'));
  if (body.length < 5) throw badArgument('the streaming request carries no enveloped message');
  const flags = body[0]!;
  const length = body.readUInt32BE(1);
  if ((flags & COMPRESSED) !== 0) throw badArgument('compressed messages are not supported');
  if (length !== body.length - 5) throw badArgument('the request must carry exactly one enveloped message');
  return asObject(body.subarray(5).toString('utf8'));
}

function errorJson(error: E2bError): { code: string; message: string } {
  return { code: error.connectCode, message: error.message };
}

/** Answer a unary call. */
export function sendUnary(res: ServerResponse, message: object): void {
  const text = JSON.stringify(message);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Answer a unary call (or a stream that never started) with a Connect error. */
export function sendRpcError(res: ServerResponse, error: E2bError): void {
  const text = JSON.stringify(errorJson(error));
  res.writeHead(CONNECT_HTTP_STATUS[error.connectCode], {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

export function envelope(flags: number, message: object): Buffer {
  const json = Buffer.from(JSON.stringify(message), 'utf8');
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(json.length, 1);
  return Buffer.concat([head, json]);
}

/**
 * The response side of a server-streaming call. Headers go out with the first message, so an
 * error before any message can still be an HTTP error; after that it travels in the end-stream
 * envelope, as the protocol requires. Writes after the client left are dropped.
 */
export class ServerStream {
  readonly #res: ServerResponse;
  #ended = false;

  constructor(res: ServerResponse) {
    this.#res = res;
  }

  get ended(): boolean {
    return this.#ended || this.#res.destroyed;
  }

  #open(): void {
    if (this.#res.headersSent) return;
    this.#res.writeHead(200, { 'content-type': 'application/connect+json', 'cache-control': 'no-store' });
  }

  send(message: object): void {
    if (this.ended) return;
    this.#open();
    this.#res.write(envelope(0, message));
  }

  /** End the stream, with an error in the end-stream message when given. */
  end(error?: E2bError): void {
    if (this.ended) return;
    this.#ended = true;
    this.#open();
    this.#res.end(envelope(END_STREAM, error === undefined ? {} : { error: errorJson(error) }));
  }
}
