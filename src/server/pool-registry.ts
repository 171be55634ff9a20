/**
 * The server's pools: the ones handed to `createServer` in code, and the ones defined over HTTP
 * (`PUT /pools/NAME`), which are persisted as JSON under `<dataDir>/pools/` and come back on the
 * next start. A defined pool owns its backend instance, made by a named factory.
 */

import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { Backend } from '../backend.js';
import { InvalidOptionsError } from '../errors.js';
import { ContainerTypeSchema, type ContainerType } from '../options.js';
import { SessionPool } from '../session-pool.js';
import { HttpError } from './http-errors.js';
import type { Logger } from './logging.js';
import { poolDataDir, removeOrphanedPoolData } from './pool-data.js';
import { parseUntrustedJson } from './request-body.js';

/** Makes a fresh backend for a pool. */
export type BackendFactory = (context: {
  readonly poolName: string;
  readonly containerType: ContainerType;
}) => Backend | Promise<Backend>;

/** A pool defined over HTTP, as persisted. */
export interface PoolDefinition {
  readonly name: string;
  readonly backend: string;
  /** Microsoft.App/sessionPools `properties` as given (secret values included: the file is 0600). */
  readonly properties: Record<string, unknown>;
}

export interface PoolEntry {
  readonly pool: SessionPool;
  /** Undefined for pools given in code. */
  readonly definition: PoolDefinition | undefined;
  provisioningState: 'InProgress' | 'Succeeded' | 'Failed';
  startError: string | undefined;
}

/**
 * A persisted definition that could not be loaded (bad JSON, invalid options, unknown backend…).
 * It is kept and reported — GET /pools, the logs, the status page — until a PUT replaces it or a
 * DELETE removes it; the server and the other pools run on.
 */
export interface FailedDefinition {
  /** The pool's name: the file's base name. */
  readonly name: string;
  readonly file: string;
  /** The stored backend name, when the file said one. */
  readonly backend: string | undefined;
  /** The stored containerType, when it is one sandpool knows. */
  readonly containerType: ContainerType | undefined;
  readonly error: string;
  readonly failedAt: Date;
}

/**
 * Where definitions live when not in `<dataDir>/pools/` (cluster mode: etcd, applied by every
 * member). Saving may fail (the store is out of reach): the change is then not made.
 */
export interface DefinitionStore {
  save(definition: PoolDefinition): Promise<void>;
  remove(name: string): Promise<void>;
}

export interface PoolRegistryOptions {
  readonly backends: Readonly<Record<string, BackendFactory>>;
  /** Backend name for a definition without `backend`. */
  readonly defaultBackend: (containerType: ContainerType) => string | undefined;
  readonly dataDir: string | undefined;
  /** Keep definitions here instead of the data dir. */
  readonly definitions?: DefinitionStore | undefined;
  readonly log: Logger;
  /** Called when a pool is added or removed (metrics, logs). */
  readonly onAdd: (pool: SessionPool) => void;
  readonly onRemove: (pool: SessionPool) => void;
}

export class PoolRegistry {
  readonly #entries = new Map<string, PoolEntry>();
  readonly #failed = new Map<string, FailedDefinition>();
  readonly #options: PoolRegistryOptions;
  /** Serialises definition changes per pool name, so two PUTs never interleave. */
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(options: PoolRegistryOptions) {
    this.#options = options;
  }

  get(name: string): PoolEntry | undefined {
    return this.#entries.get(name);
  }

  entries(): PoolEntry[] {
    return [...this.#entries.values()];
  }

  pools(): SessionPool[] {
    return this.entries().map((e) => e.pool);
  }

  /** Persisted definitions that failed to load, by name. */
  failed(): FailedDefinition[] {
    return [...this.#failed.values()];
  }

  getFailed(name: string): FailedDefinition | undefined {
    return this.#failed.get(name);
  }

  backendNames(): string[] {
    return Object.keys(this.#options.backends);
  }

  /** Register a pool made in code; starts it unless it is already running. */
  addStatic(pool: SessionPool): void {
    if (this.#entries.has(pool.name)) throw new InvalidOptionsError(`two pools are named "${pool.name}"`);
    const entry: PoolEntry = { pool, definition: undefined, provisioningState: 'InProgress', startError: undefined };
    this.#entries.set(pool.name, entry);
    this.#options.onAdd(pool);
    this.#start(entry);
  }

  /** Create or replace a defined pool. Returns whether it was created (vs replaced). */
  define(definition: PoolDefinition): Promise<{ created: boolean; entry: PoolEntry }> {
    return this.#locked(definition.name, () => this.#define(definition, true));
  }

  /**
   * Cluster mode: bring this process in line with a definition stored by any member (`undefined`:
   * deleted). A change of scale settings only (`scaleUpdate` says which) updates the running pool;
   * any other change rebuilds it; an identical one does nothing. Pools defined in code are kept.
   */
  applyStored(
    name: string,
    definition: PoolDefinition | undefined,
    scaleUpdate: (from: Record<string, unknown>, to: Record<string, unknown>) => Record<string, unknown> | undefined,
  ): Promise<void> {
    return this.#locked(name, async () => {
      const entry = this.#entries.get(name);
      if (entry !== undefined && entry.definition === undefined) return;
      if (definition === undefined) {
        if (entry === undefined) return;
        this.#entries.delete(name);
        await this.#closeEntry(entry);
        return;
      }
      if (entry?.definition !== undefined) {
        if (JSON.stringify(entry.definition) === JSON.stringify(definition)) return;
        const update =
          entry.definition.backend === definition.backend
            ? scaleUpdate(entry.definition.properties, definition.properties)
            : undefined;
        if (update !== undefined) {
          entry.pool.update(update);
          (entry as { definition: PoolDefinition | undefined }).definition = definition;
          return;
        }
      }
      await this.#define(definition, false);
    });
  }

  async #define(definition: PoolDefinition, persist: boolean): Promise<{ created: boolean; entry: PoolEntry }> {
    const existing = this.#entries.get(definition.name);
    if (existing !== undefined && existing.definition === undefined) {
      throw new HttpError(409, 'Conflict', `pool "${definition.name}" is defined in code and cannot be replaced over HTTP`);
    }
    const pool = await this.#build(definition);
    if (persist) {
      try {
        await this.#persist(definition);
      } catch (error) {
        await pool.close().catch(() => {});
        throw error;
      }
    }
    const entry: PoolEntry = { pool, definition, provisioningState: 'InProgress', startError: undefined };
    this.#entries.set(definition.name, entry);
    this.#failed.delete(definition.name);
    this.#options.onAdd(pool);
    if (existing !== undefined) await this.#closeEntry(existing);
    this.#start(entry);
    return { created: existing === undefined, entry };
  }

  /** Remove a defined pool, closing it. Returns false when there was none. */
  remove(name: string): Promise<boolean> {
    return this.#locked(name, async () => {
      const entry = this.#entries.get(name);
      if (entry === undefined) {
        const failed = this.#failed.get(name);
        if (failed === undefined) return false;
        this.#failed.delete(name);
        await rm(failed.file, { force: true });
        return true;
      }
      if (entry.definition === undefined) {
        throw new HttpError(409, 'Conflict', `pool "${name}" is defined in code and cannot be deleted over HTTP`);
      }
      if (this.#options.definitions !== undefined) await this.#options.definitions.remove(name);
      this.#entries.delete(name);
      if (this.#options.dataDir !== undefined && this.#options.definitions === undefined) {
        await rm(this.#file(name), { force: true });
      }
      await this.#closeEntry(entry);
      // Its paused sessions and snapshots go with it (a crash before this line: loadPersisted).
      const data = this.#pausedDir(name);
      if (data !== undefined) await rm(data, { recursive: true, force: true });
      return true;
    });
  }

  /** Apply a change to a defined pool's stored definition without rebuilding it (PATCH of scale settings). */
  async persistDefinition(entry: PoolEntry, definition: PoolDefinition): Promise<void> {
    await this.#persist(definition);
    (entry as { definition: PoolDefinition | undefined }).definition = definition;
  }

  /**
   * Recreate the pools persisted under the data dir. A definition that cannot be loaded is marked
   * failed and reported (never thrown): one broken file must not stop the server or the others.
   */
  async loadPersisted(): Promise<void> {
    const dir = this.#options.dataDir;
    if (dir === undefined || this.#options.definitions !== undefined) return;
    let names: string[];
    try {
      names = (await readdir(join(dir, 'pools'))).filter((n) => n.endsWith('.json'));
    } catch {
      return;
    }
    await removeOrphanedPoolData(dir, new Set(names.map((n) => n.slice(0, -'.json'.length))), this.#options.log);
    for (const file of names.sort()) {
      const name = file.slice(0, -'.json'.length);
      const path = join(dir, 'pools', file);
      let stored: unknown;
      try {
        stored = parseUntrustedJson(await readFile(path, 'utf8'), 'the stored definition');
        const definition = storedDefinition(stored, name);
        if (this.#entries.has(name)) throw new Error(`a pool named "${name}" is already defined in code`);
        await this.define(definition);
        this.#options.log({ level: 'info', msg: 'pool restored', pool: name, backend: definition.backend });
      } catch (error) {
        const failed = failedDefinition(name, path, stored, error);
        this.#failed.set(name, failed);
        this.#options.log({
          level: 'error',
          msg: 'could not restore a persisted pool',
          pool: name,
          file,
          error: failed.error,
        });
      }
    }
  }

  /** Where a defined pool keeps its paused sessions and snapshots (with a data dir, outside cluster mode). */
  #pausedDir(name: string): string | undefined {
    if (this.#options.dataDir === undefined || this.#options.definitions !== undefined) return undefined;
    return poolDataDir(this.#options.dataDir, name);
  }

  /** Close every pool (SIGTERM drain). */
  async closeAll(): Promise<void> {
    const entries = this.entries();
    this.#entries.clear();
    this.#failed.clear();
    await Promise.allSettled(entries.map((e) => this.#closeEntry(e)));
  }

  /** Resolve the backend name for a definition: explicit, else the default for its containerType. */
  resolveBackendName(explicit: unknown, properties: Record<string, unknown>): string {
    if (explicit !== undefined && typeof explicit !== 'string')
      throw new HttpError(400, 'InvalidRequestContent', 'backend must be a string');
    if (typeof explicit === 'string') {
      if (this.#factory(explicit) === undefined) {
        throw new HttpError(
          400,
          'InvalidRequestContent',
          `unknown backend "${explicit}"; available: ${this.backendNames().join(', ') || 'none'}`,
        );
      }
      return explicit;
    }
    const parsed = ContainerTypeSchema.safeParse(properties['containerType'] ?? 'PythonLTS');
    const type: ContainerType = parsed.success ? parsed.data : 'PythonLTS';
    const name = this.#options.defaultBackend(type);
    if (name === undefined || this.#factory(name) === undefined) {
      throw new HttpError(
        400,
        'InvalidRequestContent',
        `no backend available for ${type} pools; give "backend" (available: ${this.backendNames().join(', ') || 'none'})`,
      );
    }
    return name;
  }

  async #build(definition: PoolDefinition): Promise<SessionPool> {
    const factory = this.#factory(definition.backend);
    if (factory === undefined) {
      throw new HttpError(
        400,
        'InvalidRequestContent',
        `unknown backend "${definition.backend}"; available: ${this.backendNames().join(', ')}`,
      );
    }
    const parsedType = ContainerTypeSchema.safeParse(definition.properties['containerType'] ?? 'PythonLTS');
    let backend: Backend;
    try {
      backend = await factory({ poolName: definition.name, containerType: parsedType.success ? parsedType.data : 'PythonLTS' });
    } catch (error) {
      const reason = (error as Error).message.split('\n')[0] ?? 'unknown error';
      throw new HttpError(
        400,
        'InvalidRequestContent',
        `backend "${definition.backend}" is not available on this server: ${reason}`,
      );
    }
    try {
      return SessionPool.fromSessionPoolProperties(definition.properties, {
        name: definition.name,
        backend,
        ownsBackend: true,
        dataDirectory: this.#pausedDir(definition.name),
      });
    } catch (error) {
      await backend.close().catch(() => {});
      throw error;
    }
  }

  /** The named backend factory: own keys only, so "constructor" or "__proto__" name no backend. */
  #factory(name: string): BackendFactory | undefined {
    return Object.hasOwn(this.#options.backends, name) ? this.#options.backends[name] : undefined;
  }

  #start(entry: PoolEntry): void {
    const started = Date.now();
    const { pool } = entry;
    // Progress while the ready set fills (a VM pool under TCG takes minutes on a fresh machine).
    let up = 0;
    const progress = (): void => {
      up += 1;
      if (entry.provisioningState !== 'InProgress') return;
      this.#options.log({
        level: 'info',
        msg: `pool "${pool.name}": ${up} of ${pool.options.readySessionInstances} ready sessions up`,
        pool: pool.name,
        backend: pool.backend.name,
      });
    };
    pool.on('sessionReady', progress);
    pool.start().then(
      () => {
        pool.off('sessionReady', progress);
        entry.provisioningState = 'Succeeded';
        this.#options.log({
          level: 'info',
          msg: `pool "${pool.name}" is ready`,
          pool: pool.name,
          backend: pool.backend.name,
          ms: Date.now() - started,
        });
      },
      (error: unknown) => {
        pool.off('sessionReady', progress);
        if (entry.pool.closed) return;
        entry.provisioningState = 'Failed';
        entry.startError = (error as Error).message;
        this.#options.log({ level: 'error', msg: 'pool failed to start', pool: entry.pool.name, error: entry.startError });
        // The pool keeps retrying with backoff; once a session comes up it is provisioned after all.
        entry.pool.once('sessionReady', () => {
          entry.provisioningState = 'Succeeded';
          entry.startError = undefined;
        });
      },
    );
  }

  async #closeEntry(entry: PoolEntry): Promise<void> {
    this.#options.onRemove(entry.pool);
    await entry.pool.close().catch((error: unknown) => {
      this.#options.log({ level: 'error', msg: 'pool close failed', pool: entry.pool.name, error: (error as Error).message });
    });
  }

  #file(name: string): string {
    return join(this.#options.dataDir!, 'pools', `${name}.json`);
  }

  async #persist(definition: PoolDefinition): Promise<void> {
    if (this.#options.definitions !== undefined) return this.#options.definitions.save(definition);
    if (this.#options.dataDir === undefined) return;
    await mkdir(join(this.#options.dataDir, 'pools'), { recursive: true, mode: 0o700 });
    const file = this.#file(definition.name);
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(definition, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, file);
  }

  async #locked<T>(name: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(name) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(work);
    this.#locks.set(name, next);
    try {
      return await next;
    } finally {
      if (this.#locks.get(name) === next) this.#locks.delete(name);
    }
  }
}

/** A stored definition's shape, checked before it is built (the pool options check the rest). */
function storedDefinition(stored: unknown, name: string): PoolDefinition {
  if (typeof stored !== 'object' || stored === null || Array.isArray(stored)) throw new Error('the file is not a JSON object');
  const { name: storedName, backend, properties } = stored as Record<string, unknown>;
  if (storedName !== name) throw new Error(`the file names pool ${JSON.stringify(storedName)}, not "${name}"`);
  if (typeof backend !== 'string') throw new Error('the definition has no backend name');
  if (typeof properties !== 'object' || properties === null || Array.isArray(properties)) {
    throw new Error('the definition has no properties object');
  }
  return { name, backend, properties: properties as Record<string, unknown> };
}

/** What is reported about a definition that failed to load: never its properties (secret values). */
function failedDefinition(name: string, file: string, stored: unknown, error: unknown): FailedDefinition {
  const record = typeof stored === 'object' && stored !== null ? (stored as Record<string, unknown>) : {};
  const properties = typeof record['properties'] === 'object' && record['properties'] !== null ? record['properties'] : {};
  const type = ContainerTypeSchema.safeParse((properties as Record<string, unknown>)['containerType']);
  const message = error instanceof Error ? error.message : String(error);
  return {
    name,
    file,
    backend: typeof record['backend'] === 'string' ? record['backend'].slice(0, 64) : undefined,
    containerType: type.success ? type.data : undefined,
    error: message.length > 2000 ? `${message.slice(0, 2000)}…` : message,
    failedAt: new Date(),
  };
}
