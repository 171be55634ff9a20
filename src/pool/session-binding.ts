/**
 * What `pool.acquire(identifier, { env, files })` binds to a session as it is claimed, checked
 * before anything is allocated: a bad name, value or path, or a backend that cannot take them,
 * rejects the acquire with a typed error and no session is spent.
 */

import type { Backend, BackendSession } from '../backend.js';
import { parseEnvironment, type Environment } from '../environment.js';
import { InvalidRequestError, UnsupportedError } from '../errors.js';
import type { ContainerType } from '../options.js';
import type { SessionOwner } from '../session-api.js';
import { toByteChunks, type ByteSource } from './byte-source.js';
import { normaliseDataPath } from './file-paths.js';

/** What `pool.acquire` binds to a session as it is claimed (already validated). */
export interface SessionBinding {
  readonly env?: Environment | undefined;
  /** Normalised paths under /mnt/data and their contents. */
  readonly files?: ReadonlyArray<readonly [string, ByteSource]> | undefined;
}

/** Most files one acquire may bind. */
export const MAX_BOUND_FILES = 1000;

/**
 * Check `acquire`'s env and files; undefined when there is nothing to bind.
 * @throws {InvalidRequestError} a bad variable (its value never quoted) or file map
 * @throws {UnsupportedError} the backend cannot bind variables (custom containers) or has no files
 */
export function parseBinding(
  options: { readonly env?: unknown; readonly files?: unknown },
  backend: Backend,
  containerType: ContainerType,
): SessionBinding | undefined {
  const env = parseEnvironment(options.env, 'env');
  const hasEnv = env !== undefined && Object.keys(env).length > 0;
  let files: Array<readonly [string, ByteSource]> | undefined;
  if (options.files !== undefined) {
    if (options.files === null || typeof options.files !== 'object' || Array.isArray(options.files)) {
      throw new InvalidRequestError('files must be an object mapping paths under /mnt/data to contents');
    }
    const entries = Object.entries(options.files as Record<string, ByteSource>);
    if (entries.length > MAX_BOUND_FILES) throw new InvalidRequestError(`files holds more than ${MAX_BOUND_FILES} files`);
    files = entries.map(([path, data]) => [normaliseDataPath(path), data] as const);
  }
  const hasFiles = files !== undefined && files.length > 0;
  if (hasEnv && (containerType === 'CustomContainer' || backend.setEnvironment === undefined)) {
    throw new UnsupportedError(`${containerType} sessions of backend "${backend.name}" take no environment at acquire`);
  }
  if (hasFiles && !backend.capabilities.files)
    throw new UnsupportedError(`backend "${backend.name}" has no file system for sessions`);
  if (!hasEnv && !hasFiles) return undefined;
  return { env: hasEnv ? env : undefined, files: hasFiles ? files : undefined };
}

/**
 * Put a binding into the session's sandbox: its variables, then its files. `sandbox` gives the
 * session's backend handle (and counts as activity); it rejects once the session is gone.
 */
export async function applyBinding(owner: SessionOwner, binding: SessionBinding, sandbox: () => BackendSession): Promise<void> {
  const { backend } = owner;
  if (binding.env !== undefined) {
    if (backend.setEnvironment === undefined) {
      throw new UnsupportedError(`backend "${backend.name}" cannot bind environment variables to its sessions`);
    }
    await backend.setEnvironment(sandbox(), binding.env);
  }
  for (const [path, data] of binding.files ?? []) {
    const handle = sandbox();
    if (!backend.capabilities.files || backend.files === undefined) {
      throw new UnsupportedError(`backend "${backend.name}" has no file system for sessions`);
    }
    await backend.files.upload(handle, path, toByteChunks(data), { maxBytes: owner.options().limits.maxFileSizeBytes });
  }
}
