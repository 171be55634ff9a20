/**
 * Response shapes, one function per wire generation (see the reference's §2). Shapes follow the
 * route, never the api-version, and carry every field any known client indexes, since several
 * clients use `[]`/`GetProperty` and crash on a missing key.
 */

import type { FileInfo, ImageOutput } from '../backend.js';
import type { ExecutionResult, SessionInfo } from '../session-types.js';
import type { JsonValue } from '../types.js';

/** The value Azure reports as `result`: the last expression, or the first image when there is none. */
export function resultValue(r: ExecutionResult): JsonValue {
  const first: ImageOutput | undefined = r.images[0];
  if ((r.result === '' || r.result === null) && first !== undefined) return { ...first };
  return r.result;
}

/** Gen 0 (`python/execute`): flat, and SK .NET-old indexes all four keys. */
export function gen0Execution(r: ExecutionResult): Record<string, JsonValue> {
  return {
    status: r.status === 'Succeeded' ? 'Success' : 'Failure',
    result: resultValue(r),
    stdout: r.stdout,
    stderr: r.stderr,
    executionTimeInMilliseconds: r.executionTimeInMilliseconds,
  };
}

/**
 * Gen 1 (`code/execute`): `properties` envelope with Success/Failure. Python pools answered `result`,
 * NodeLTS and BYOC images `executionResult`; both are sent.
 */
export function gen1Execution(r: ExecutionResult): Record<string, JsonValue> {
  const value = resultValue(r);
  return {
    $id: '1',
    properties: {
      $id: '2',
      status: r.status === 'Succeeded' ? 'Success' : 'Failure',
      stdout: r.stdout,
      stderr: r.stderr,
      result: value,
      executionResult: value,
      executionTimeInMilliseconds: r.executionTimeInMilliseconds,
    },
  };
}

export interface Gen2Options {
  readonly identifier: string;
  readonly executionType: 'Synchronous' | 'Asynchronous';
  /** Shell pools report the exit code as `status`. */
  readonly shell: boolean;
  /** SK .NET types `executionResult` as a string and throws on anything else (SK issue #12445). */
  readonly stringifyResult: boolean;
}

/** Gen 2 (`executions`): the execution resource. */
export function gen2Execution(r: ExecutionResult, o: Gen2Options): Record<string, JsonValue> {
  let value = resultValue(r);
  if (o.stringifyResult && typeof value !== 'string') value = value === null ? '' : JSON.stringify(value);
  const status = o.shell ? String(r.exitCode ?? (r.status === 'Succeeded' ? 0 : 1)) : r.status;
  return {
    id: r.id,
    identifier: o.identifier,
    executionType: o.executionType,
    status,
    result: {
      stdout: r.stdout,
      stderr: r.stderr,
      executionResult: value,
      executionTimeInMilliseconds: r.executionTimeInMilliseconds,
    },
  };
}

/** Gen 2 resource of an execution that has not finished (asynchronous mode). */
export function gen2Pending(id: string, identifier: string, status: 'NotStarted' | 'Running'): Record<string, JsonValue> {
  return { id, identifier, executionType: 'Asynchronous', status };
}

/** Gen 2 resource of an asynchronous execution that failed before producing a result. */
export function gen2Errored(id: string, identifier: string, code: string, message: string): Record<string, JsonValue> {
  return { id, identifier, executionType: 'Asynchronous', status: 'Failed', error: { error: { code, message } } };
}

/** `SessionResourceFile` (Gen 2). `directory` is the parent relative to the listed path. */
export function resourceFile(f: FileInfo, listedPath = ''): Record<string, JsonValue> {
  const parent = f.path.includes('/') ? f.path.slice(0, f.path.lastIndexOf('/')) : '';
  const base = listedPath === '' ? '' : `${listedPath.replace(/\/+$/, '')}/`;
  const directory = base !== '' && parent.startsWith(base) ? parent.slice(base.length) : parent === listedPath ? '' : parent;
  return {
    name: f.name,
    type: f.type === 'directory' ? 'directory' : 'file',
    contentType: f.contentType ?? (f.type === 'directory' ? 'inode/directory' : 'application/octet-stream'),
    sizeInBytes: f.type === 'directory' ? 4096 : f.sizeInBytes,
    lastModifiedAt: f.lastModifiedAt,
    directory,
  };
}

/** Legacy file metadata (Gen 1): `filename` is relative to /mnt/data (LangChain asserts it). */
export function legacyFileProperties(f: FileInfo, id: number): Record<string, JsonValue> {
  return { $id: String(id), filename: f.path, size: f.sizeInBytes, lastModifiedTime: f.lastModifiedAt };
}

/**
 * A file listing both generations can read: the Gen 1 envelope (`value[].properties.filename|size`)
 * with each entry also carrying the Gen 2 fields (`value[].name|type|sizeInBytes|lastModifiedAt`).
 * `files` is the same route in both generations, and every client ignores keys it does not know.
 */
export function fileListing(files: readonly FileInfo[], listedPath = ''): Record<string, JsonValue> {
  let id = 0;
  return {
    $id: String(++id),
    value: files.map((f) => {
      const entryId = ++id;
      return { $id: String(entryId), properties: legacyFileProperties(f, ++id), ...resourceFile(f, listedPath) };
    }),
    nextLink: null,
  };
}

/** Gen 0 list / upload (`$values` of `{filename, bytes}`), plus the Gen 1 envelope. */
export function gen0FileListing(files: readonly FileInfo[]): Record<string, JsonValue> {
  return {
    $values: files.map((f) => ({ filename: f.path, bytes: f.sizeInBytes, lastModifiedTime: f.lastModifiedAt })),
    ...fileListing(files),
  };
}

/** Azure's `Session`, with both `expireAt` (spec) and `expiresAt` (Learn) since clients disagree. */
export function sessionResource(s: SessionInfo): Record<string, JsonValue> {
  const iso = (d: Date | undefined): string | null => (d === undefined ? null : d.toISOString());
  const expires = iso(s.expiresAt);
  return {
    identifier: s.identifier ?? '',
    createdAt: s.createdAt.toISOString(),
    lastAccessedAt: iso(s.lastAccessedAt ?? s.allocatedAt) ?? s.createdAt.toISOString(),
    expireAt: expires,
    expiresAt: expires,
    etag: s.etag,
  };
}

/** Session list with both `sessions` (observed live) and `value` (documented), plus paging. */
export function sessionList(page: readonly SessionInfo[], total: number, nextLink: string | null): Record<string, JsonValue> {
  const items = page.map(sessionResource);
  return { sessions: items, value: items, count: total, nextLink };
}
