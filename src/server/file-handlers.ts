/**
 * Files under `/mnt/data` in every generation's spelling. Uploads are multipart (busboy) streamed
 * straight into `session.uploadFile`, never buffered whole, and cut at the pool's file-size cap with
 * 413. Paths are normalised and checked by the pool; here only `/mnt/data/` prefixes are removed.
 */

import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';

import busboy from 'busboy';

import type { FileInfo } from '../backend.js';
import { AbortedError, ErrorCode, FileError } from '../errors.js';
import type { SessionApi } from '../session.js';
import { HttpError, badRequest } from './http-errors.js';
import { sendEmpty, sendJson, sendStream, type RequestContext } from './http-io.js';
import { multipartBody } from './multipart.js';
import { dataPath } from './request-body.js';
import { acquire, identifierOf, poolEntry, type ServerState } from './server-state.js';
import { fileListing, gen0FileListing, legacyFileProperties, resourceFile } from './shapes.js';

/** Multipart framing allowance on top of the file-size cap when checking Content-Length. */
const MULTIPART_OVERHEAD = 64 * 1024;

/** Count bytes as they pass and fail with FILE_TOO_LARGE past the cap, before the backend commits. */
export async function* capped(stream: Readable, maxBytes: number): AsyncIterable<Uint8Array> {
  let total = 0;
  // Not destroyed on early exit: the parser must still see the rest of the body (drained below),
  // or it stalls waiting for a reader and the response never goes out.
  for await (const chunk of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) {
      throw new FileError(ErrorCode.FILE_TOO_LARGE, `the file is larger than the pool's limit of ${maxBytes} bytes`);
    }
    yield chunk;
  }
}

/** Receive every file part of a multipart body, uploading each as it streams in. */
export async function receiveUploads(
  ctx: Pick<RequestContext, 'req' | 'res'>,
  maxBytes: number,
  store: (filename: string, data: AsyncIterable<Uint8Array>) => Promise<FileInfo>,
): Promise<FileInfo[]> {
  const declared = Number(ctx.req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes + MULTIPART_OVERHEAD) {
    throw new HttpError(413, 'RequestEntityTooLarge', `the upload is larger than the pool's limit of ${maxBytes} bytes`, {
      headers: { connection: 'close' },
    });
  }
  // Multipart by its Content-Type, or by its content (Semantic Kernel labels it JSON): multipart.ts.
  const body = await multipartBody(ctx.req);
  if (body === undefined) {
    throw new HttpError(415, 'UnsupportedMediaType', 'uploads must be multipart/form-data with a "file" part');
  }
  let parser: busboy.Busboy;
  try {
    parser = busboy({
      headers: { ...ctx.req.headers, 'content-type': body.contentType },
      preservePath: true,
      // requests, httpx and aiohttp send a non-ASCII file name as raw UTF-8 (busboy's default is latin1).
      defParamCharset: 'utf8',
      limits: { files: 16, fields: 32, fieldSize: 64 * 1024, parts: 64, headerPairs: 64, fileSize: maxBytes + 1 },
    });
  } catch (error) {
    throw badRequest(`malformed multipart request: ${(error as Error).message}`, 'InvalidRequestContent');
  }
  return new Promise<FileInfo[]>((resolve, reject) => {
    const results: FileInfo[] = [];
    let failure: unknown;
    let chain: Promise<void> = Promise.resolve();
    // A client that goes away mid-body never ends the request, and neither does one cut off by the
    // body idle timeout (its 408 finishes the response, after which Node no longer reports the
    // request's end): the parser would wait forever, holding the session's upload open and its
    // half-written temp file in /mnt/data. Destroying the parser fails the part stream, which
    // makes the backend abort the upload and remove the temp file.
    const cutOff = (): void => {
      if (!ctx.req.complete) parser.destroy(new AbortedError('the request ended before the upload was complete'));
    };
    ctx.req.once('close', cutOff);
    ctx.res.once('close', cutOff);
    parser.once('close', () => {
      ctx.req.off('close', cutOff);
      ctx.res.off('close', cutOff);
    });
    parser.on('file', (_field, stream, info) => {
      // A truncated body errors the part stream too; the reader (capped) or the parser's own error
      // handler reports it, and an unlistened 'error' event must never take the process down.
      stream.on('error', () => {});
      chain = chain.then(async () => {
        if (failure !== undefined) {
          stream.resume();
          return;
        }
        try {
          if (info.filename === undefined || info.filename === '') throw badRequest('the file part has no filename');
          results.push(await store(info.filename, capped(stream, maxBytes)));
        } catch (error) {
          failure ??= error;
        } finally {
          // Drain whatever the store did not read, so the parser reaches the end of the body.
          stream.resume();
        }
      });
    });
    parser.on('error', (error: Error) => {
      failure ??= badRequest(`malformed multipart request: ${error.message}`, 'InvalidRequestContent');
      body.source.unpipe(parser);
      body.source.resume();
      ctx.req.resume();
      void chain.then(() => reject(failure));
    });
    parser.on('close', () => {
      void chain.then(() => {
        if (failure !== undefined) reject(failure);
        else if (results.length === 0) reject(badRequest('the multipart body has no file part', 'InvalidRequestContent'));
        else resolve(results);
      });
    });
    body.source.pipe(parser);
  });
}

async function sessionFor(state: ServerState, ctx: RequestContext): Promise<{ session: SessionApi; maxBytes: number }> {
  const { pool } = poolEntry(state, ctx);
  const identifier = identifierOf(ctx);
  if (!pool.backend.capabilities.files) {
    throw new HttpError(400, 'SessionRequestNotSupported', `the "${pool.backend.name}" backend of this pool has no files`);
  }
  return { session: await acquire(state, pool, identifier, ctx), maxBytes: pool.options.limits.maxFileSizeBytes };
}

/** POST python/uploadFile | files/upload | files. */
export async function handleUpload(state: ServerState, ctx: RequestContext, generation: 0 | 1 | 2): Promise<void> {
  const { session, maxBytes } = await sessionFor(state, ctx);
  const directory = ctx.url.searchParams.get('path');
  const files = await receiveUploads(ctx, maxBytes, (filename, data) => session.uploadFile(dataPath(filename, directory), data));
  if (generation === 0) return sendJson(ctx.res, 200, gen0FileListing(files));
  if (generation === 1) return sendJson(ctx.res, 200, fileListing(files));
  sendJson(ctx.res, 200, resourceFile(files[0]!));
}

/** GET files (both generations), GET python/files. */
export async function handleList(state: ServerState, ctx: RequestContext, generation: 0 | 2): Promise<void> {
  const { session } = await sessionFor(state, ctx);
  const path = dataPath(ctx.url.searchParams.get('path') ?? '');
  const recursive = /^(true|1)$/i.test(ctx.url.searchParams.get('recursive') ?? '');
  const files = await session.listFiles({ path, recursive });
  sendJson(ctx.res, 200, generation === 0 ? gen0FileListing(files) : fileListing(files, path));
}

/** GET files/{name}: Gen 2 `SessionResourceFile` plus the 2024-08-02 `value[].properties` envelope. */
export async function handleFileInfo(state: ServerState, ctx: RequestContext): Promise<void> {
  const { session } = await sessionFor(state, ctx);
  const info = await session.fileInfo(dataPath(ctx.route.param ?? '', ctx.url.searchParams.get('path')));
  sendJson(ctx.res, 200, { ...resourceFile(info), value: [{ $id: '2', properties: legacyFileProperties(info, 3) }] });
}

/** GET files/content/{name} | files/{name}/content | python/downloadFile?filename=. */
export async function handleDownload(state: ServerState, ctx: RequestContext, generation: 0 | 1 | 2): Promise<void> {
  const { session } = await sessionFor(state, ctx);
  const name = generation === 0 ? (ctx.url.searchParams.get('filename') ?? '') : (ctx.route.param ?? '');
  const directory = generation === 2 ? ctx.url.searchParams.get('path') : null;
  await sendDownload(ctx.res, await session.downloadFile(dataPath(name, directory)));
}

/** Stream a downloaded file with its content type, length and modification time. */
export function sendDownload(
  res: ServerResponse,
  { info, body }: { readonly info: FileInfo; readonly body: AsyncIterable<Uint8Array> },
): Promise<void> {
  return sendStream(
    res,
    200,
    {
      'content-type': info.contentType ?? 'application/octet-stream',
      'content-length': info.sizeInBytes,
      'last-modified': new Date(info.lastModifiedAt).toUTCString(),
    },
    body,
  );
}

const LEGACY_VERSIONS = new Set(['2024-02-02-preview', '2024-08-02-preview']);

/** DELETE files/{name}: 204 (Gen 2), or 200 with a message for the 2024-era api-versions. */
export async function handleDelete(state: ServerState, ctx: RequestContext): Promise<void> {
  const { session } = await sessionFor(state, ctx);
  await session.deleteFile(dataPath(ctx.route.param ?? '', ctx.url.searchParams.get('path')));
  if (LEGACY_VERSIONS.has(ctx.url.searchParams.get('api-version') ?? '')) {
    return sendJson(ctx.res, 200, { message: 'file deleted successfully' });
  }
  sendEmpty(ctx.res, 204);
}
