/**
 * envd's file transfer routes (port 49983): `GET /files?path=` downloads, `POST /files?path=`
 * uploads, as multipart (`file` parts, named by their filename when no path is given) or as a raw
 * `application/octet-stream` body (optionally gzip-encoded). Both stream straight into the
 * session's files area under the pool's file-size cap.
 */

import { pipeline, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';

import type { FileInfo } from '../../backend.js';
import { capped, receiveUploads, sendDownload } from '../file-handlers.js';
import { sendJson } from '../http-io.js';
import type { E2bContext, E2bRequest } from './context.js';
import { E2bError, badArgument } from './errors.js';
import { toDataPath, toE2bPath } from './paths.js';
import type { LiveSandbox } from './sandboxes.js';

/** envd's answer for a written file. */
function written(info: FileInfo): { name: string; type: 'file'; path: string } {
  return { name: info.name, type: 'file', path: toE2bPath(info.path) };
}

function queryPath(r: E2bRequest): string | undefined {
  const path = r.url.searchParams.get('path');
  return path === null || path === '' ? undefined : path;
}

export async function download(_ctx: E2bContext, r: E2bRequest, live: LiveSandbox): Promise<void> {
  const path = queryPath(r);
  if (path === undefined) throw badArgument('the path query parameter is required');
  await sendDownload(r.res, await live.session.downloadFile(toDataPath(path)));
}

export async function upload(_ctx: E2bContext, r: E2bRequest, live: LiveSandbox): Promise<void> {
  const maxBytes = live.pool.options.limits.maxFileSizeBytes;
  const path = queryPath(r);
  const type = (r.req.headers['content-type'] ?? '').toLowerCase();
  if (type.startsWith('application/octet-stream')) {
    if (path === undefined) throw badArgument('an application/octet-stream upload needs the path query parameter');
    const encoding = (r.req.headers['content-encoding'] ?? 'identity').toLowerCase();
    if (encoding !== 'identity' && encoding !== 'gzip')
      throw new E2bError(415, 'invalid_argument', `unsupported content encoding "${encoding}"`);
    const declared = Number(r.req.headers['content-length']);
    if (encoding === 'identity' && Number.isFinite(declared) && declared > maxBytes) {
      throw new E2bError(413, 'resource_exhausted', `the file is larger than the pool's limit of ${maxBytes} bytes`);
    }
    let source: Readable = r.req;
    let malformed = false;
    if (encoding === 'gzip') {
      const gunzip = createGunzip();
      // A malformed body, or a client gone mid-body, fails the upload through the iterator below
      // (pipeline destroys the decompressor too, so the upload never waits on a dead request).
      gunzip.on('error', (error: Error & { code?: unknown }) => {
        if (typeof error.code === 'string' && error.code.startsWith('Z_')) malformed = true;
      });
      pipeline(r.req, gunzip, () => {});
      source = gunzip;
    }
    // The cap counts decompressed bytes, so a gzip bomb stops at the limit.
    const info = await live.session.uploadFile(toDataPath(path), capped(source, maxBytes)).catch((error: unknown) => {
      throw malformed ? badArgument('the gzip-encoded body is malformed') : error;
    });
    sendJson(r.res, 200, [written(info)]);
    return;
  }
  if (!type.startsWith('multipart/form-data')) {
    throw new E2bError(415, 'invalid_argument', 'uploads must be multipart/form-data or application/octet-stream');
  }
  const files = await receiveUploads(r, maxBytes, (filename, data) =>
    live.session.uploadFile(toDataPath(path ?? filename), data),
  );
  sendJson(r.res, 200, files.map(written));
}
