/**
 * What `pool.acquire(identifier, { env, files })` binds to a session as it is claimed, checked
 * before anything is allocated: a bad name, value or path, or a backend that cannot take them,
 * rejects the acquire with a typed error and no session is spent.
 */

import type { Backend } from '../backend.js';
import { parseEnvironment } from '../environment.js';
import { InvalidRequestError, toSandpoolError, UnsupportedError, type SandpoolError } from '../errors.js';
import type { ContainerType } from '../options.js';
import type { Session, SessionBinding } from '../session.js';
import type { ByteSource } from './byte-source.js';
import { normaliseDataPath } from './file-paths.js';

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
 * Bindings of acquires in flight, by identifier: taken by the allocator the moment a slot is
 * handed over (so the binding leads the session's chain), then awaited for the acquire.
 */
export class PendingBindings {
  readonly #pending = new Map<string, SessionBinding>();

  constructor(
    /** End a session whose binding failed (reason `failed`). */
    private readonly fail: (session: Session, failure: SandpoolError) => Promise<void>,
  ) {}

  set(identifier: string, binding: SessionBinding): void {
    this.#pending.set(identifier, binding);
  }

  forget(identifier: string): void {
    this.#pending.delete(identifier);
  }

  /** A session was handed to `identifier`: bind what its acquire asked for, first in its chain. */
  claim(session: Session, identifier: string): void {
    const binding = this.#pending.get(identifier);
    if (binding === undefined) return;
    this.#pending.delete(identifier);
    void session.bind(binding).catch(() => undefined); // awaited (and reported) by `bound`
  }

  /** Wait for the claimed session's binding; a session whose binding failed is ended. */
  async bound(session: Session): Promise<Session> {
    try {
      await session.bound();
      return session;
    } catch (error) {
      const failure = toSandpoolError(error, 'binding the environment or files failed');
      await this.fail(session, failure);
      throw failure;
    }
  }
}
