/**
 * Pieces both in-process JavaScript backends share: their capabilities, request checks and a
 * per-session queue that keeps executions on one sandbox strictly in order.
 */

import type { BackendCapabilities, ExecuteRequest } from '../../src/backend.js';
import { InvalidRequestError, UnsupportedError } from '../../src/errors.js';

/** In-process isolates run JavaScript only, with no files, network, snapshots or HTTP. */
export const JS_ISOLATE_CAPABILITIES: BackendCapabilities = Object.freeze({
  containerTypes: Object.freeze(['NodeLTS'] as const),
  languages: Object.freeze(['javascript'] as const),
  isolation: 'isolate',
  inProcess: true,
  files: false,
  network: false,
  snapshots: false,
  httpForwarding: false,
});

/** Reject requests this backend cannot run at all, with a typed error. */
export function checkJsRequest(backend: string, request: ExecuteRequest): void {
  if (request.language !== 'javascript') {
    throw new UnsupportedError(`the ${backend} backend runs javascript only, not ${String(request.language)}`);
  }
  if (typeof request.code !== 'string') throw new InvalidRequestError('code must be a string');
  if (!(Number.isFinite(request.timeoutMs) && request.timeoutMs > 0)) {
    throw new InvalidRequestError(`timeoutMs must be a positive number of milliseconds, got ${String(request.timeoutMs)}`);
  }
  if (!(Number.isInteger(request.outputMaxBytes) && request.outputMaxBytes >= 1)) {
    throw new InvalidRequestError(`outputMaxBytes must be a positive integer, got ${String(request.outputMaxBytes)}`);
  }
  if (request.argv !== undefined || request.stdin !== undefined) {
    throw new UnsupportedError(`argv and stdin are for shell sessions; the ${backend} backend runs javascript`);
  }
}

/** Runs tasks one after another; a failed task does not stop the ones queued behind it. */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(task, task);
    this.#tail = next.catch(() => undefined);
    return next;
  }
}

export const MiB = 1024 * 1024;
