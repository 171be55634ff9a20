/**
 * Records of Gen 2 executions, so `GET executions/{id}` can answer for asynchronous runs (and for
 * synchronous ones, which the spec also allows). Bounded in count and age: a flood of executions
 * cannot grow server memory without limit.
 */

import type { ExecutionResult } from '../session-types.js';

export type ExecutionRecord =
  | { readonly state: 'running'; readonly id: string; readonly identifier: string; readonly at: number }
  | {
      readonly state: 'done';
      readonly id: string;
      readonly identifier: string;
      readonly at: number;
      readonly result: ExecutionResult;
      readonly executionType: 'Synchronous' | 'Asynchronous';
    }
  | {
      readonly state: 'error';
      readonly id: string;
      readonly identifier: string;
      readonly at: number;
      readonly code: string;
      readonly message: string;
    };

export class ExecutionStore {
  readonly #records = new Map<string, ExecutionRecord>();
  readonly #max: number;
  readonly #ttlMs: number;

  constructor(options: { max?: number; ttlMs?: number } = {}) {
    this.#max = options.max ?? 2000;
    this.#ttlMs = options.ttlMs ?? 3_600_000;
  }

  static key(pool: string, id: string): string {
    return `${pool}\u0000${id}`;
  }

  has(key: string): boolean {
    return this.#records.has(key);
  }

  set(key: string, record: ExecutionRecord): void {
    this.#records.delete(key);
    this.#records.set(key, record);
    this.#evict();
  }

  /** The record, only when the caller names the same identifier (the identifier is the access secret). */
  get(key: string, identifier: string | undefined): ExecutionRecord | undefined {
    this.#evict();
    const record = this.#records.get(key);
    if (record === undefined || record.identifier !== identifier) return undefined;
    return record;
  }

  /** Forget a pool's records (pool deleted). */
  dropPool(pool: string): void {
    for (const key of this.#records.keys()) if (key.startsWith(`${pool}\u0000`)) this.#records.delete(key);
  }

  #evict(): void {
    const cutoff = Date.now() - this.#ttlMs;
    for (const [key, record] of this.#records) {
      // Map iteration is insertion order, so the oldest come first.
      if (this.#records.size > this.#max || (record.at < cutoff && record.state !== 'running')) this.#records.delete(key);
      else break;
    }
  }
}
