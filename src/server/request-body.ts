/**
 * Reading and normalising request bodies. Clients disagree on the execute body (flat or wrapped in
 * `properties`, `code` or `pythonCode`, `inline` or `Inline`, identifier in the query or the body),
 * so everything funnels through one lenient parser that still rejects what is actually wrong.
 */

import type { IncomingMessage } from 'node:http';

import { parseEnvironment, type Environment } from '../environment.js';
import { UntrustedJsonError, parseUntrustedJsonText } from '../untrusted-json.js';
import { HttpError, badRequest } from './http-errors.js';

/** Read the whole body, refusing more than `maxBytes` with 413 (checked before and while reading). */
export async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    throw new HttpError(413, 'RequestEntityTooLarge', `the request body is larger than ${maxBytes} bytes`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) {
      throw new HttpError(413, 'RequestEntityTooLarge', `the request body is larger than ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** JSON.parse for untrusted text (src/untrusted-json.ts); a refusal is a 400 naming `what`. */
export function parseUntrustedJson(text: string, what = 'the request body'): unknown {
  try {
    return parseUntrustedJsonText(text);
  } catch (error) {
    if (error instanceof UntrustedJsonError) throw badRequest(`${what} ${error.message}`, 'InvalidRequestContent');
    throw error;
  }
}

/** Parse a JSON object body; an empty body is `{}`. */
export async function readJsonObject(req: IncomingMessage, maxBytes: number): Promise<Record<string, unknown>> {
  const raw = await readBody(req, maxBytes);
  if (raw.length === 0) return {};
  const parsed = parseUntrustedJson(raw.toString('utf8'));
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw badRequest('the request body must be a JSON object', 'InvalidRequestContent');
  }
  return parsed as Record<string, unknown>;
}

export interface ExecuteBody {
  readonly identifier: string | undefined;
  readonly code: string | undefined;
  readonly executionType: 'Synchronous' | 'Asynchronous';
  readonly timeoutInSeconds: number | undefined;
  readonly shellCommand: string | undefined;
  readonly execCommandAndArgs: string[] | undefined;
  readonly stdin: string | undefined;
  readonly outputStreamsMaxLength: number | undefined;
  /**
   * sandpool extension: environment variables bound to the session when this request creates it
   * (ignored when the identifier already has a live session). Secrets: never logged or echoed.
   */
  readonly env: Environment | undefined;
}

const lower = (v: unknown): string | undefined => (typeof v === 'string' ? v.toLowerCase() : undefined);

function optionalString(o: Record<string, unknown>, key: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw badRequest(`${key} must be a string`);
  return v;
}

function optionalPositive(o: Record<string, unknown>, key: string, integer: boolean): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw badRequest(`${key} must be a positive ${integer ? 'integer' : 'number'}`);
  }
  return n;
}

/**
 * Normalise an execute body (any generation). Fields inside `properties` win over top-level ones,
 * since wrapped clients sometimes also set top-level keys for the flat variant.
 */
export function parseExecuteBody(body: Record<string, unknown>): ExecuteBody {
  const wrapped = body['properties'];
  if (wrapped !== undefined && (typeof wrapped !== 'object' || wrapped === null || Array.isArray(wrapped))) {
    throw badRequest('properties must be an object', 'SessionPropertiesMissing');
  }
  const o: Record<string, unknown> = { ...body, ...(wrapped as Record<string, unknown> | undefined) };

  const inputType = lower(o['codeInputType']) ?? 'inline';
  if (!['inline', 'inlinebase64', 'inlinetext'].includes(inputType)) {
    throw badRequest(`codeInputType must be Inline, InlineBase64 or InlineText, got "${String(o['codeInputType'])}"`);
  }
  const executionType = lower(o['executionType']) ?? 'synchronous';
  if (executionType !== 'synchronous' && executionType !== 'asynchronous') {
    throw badRequest(`executionType must be Synchronous or Asynchronous, got "${String(o['executionType'])}"`);
  }
  let code = optionalString(o, 'code') ?? optionalString(o, 'pythonCode');
  if (code !== undefined && inputType === 'inlinebase64') {
    if (!/^[A-Za-z0-9+/=\s_-]*$/.test(code)) throw badRequest('code is not valid base64 (codeInputType InlineBase64)');
    code = Buffer.from(code, 'base64').toString('utf8');
  }
  const argv = o['execCommandAndArgs'];
  if (argv !== undefined && argv !== null) {
    if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) {
      throw badRequest('execCommandAndArgs must be a non-empty array of strings');
    }
  }
  const shellCommand = optionalString(o, 'shellCommand');
  if (shellCommand !== undefined && argv !== undefined && argv !== null) {
    throw badRequest('give either shellCommand or execCommandAndArgs, not both');
  }
  return {
    identifier: optionalString(o, 'identifier'),
    code,
    executionType: executionType === 'asynchronous' ? 'Asynchronous' : 'Synchronous',
    timeoutInSeconds: optionalPositive(o, 'timeoutInSeconds', false),
    shellCommand,
    execCommandAndArgs: (argv ?? undefined) as string[] | undefined,
    stdin: optionalString(o, 'stdin'),
    outputStreamsMaxLength: optionalPositive(o, 'outputStreamsMaxLength', true),
    env: parseEnvironment(o['env'] ?? undefined, 'env'),
  };
}

/**
 * A file name as clients send it: strip a leading `/mnt/data/` (SK Python, llama-index send
 * absolute paths) or `/`, and join it to an optional `path` directory (Gen 2 `?path=`).
 * Traversal is refused by the pool; this only removes the spellings of "the data directory".
 */
export function dataPath(name: string, directory?: string | null): string {
  // Other absolute paths are left as they are, for the pool to refuse.
  const strip = (p: string): string => p.replace(/^\/+mnt\/+data(\/+|$)/, '');
  const dir = directory === undefined || directory === null ? '' : strip(directory).replace(/\/+$/, '');
  const file = strip(name);
  return dir === '' ? file : file === '' ? dir : `${dir}/${file}`;
}
