/**
 * Streamed uploads and downloads over the agent protocol. Neither direction ever holds a whole
 * file: uploads follow the stream's backpressure, downloads use the agent's credit window, so the
 * host buffers at most `DOWNLOAD_WINDOW` chunks per transfer.
 */

import type { FileInfo } from '../../../src/backend.js';
import {
  AbortedError,
  BackendError,
  ErrorCode,
  FileError,
  InvalidRequestError,
  type SandpoolError,
  toSandpoolError,
} from '../../../src/errors.js';
import type { Pending } from './agent-client.js';
import { agentError } from './agent-errors.js';
import type { FrameId } from './protocol.js';

/** The slice of AgentClient the transfers need. */
export interface FileTransport {
  open(pending: Pending): FrameId;
  forget(id: FrameId): void;
  send(frame: Record<string, unknown>): void;
  sendAndDrain(frame: Record<string, unknown>): Promise<void>;
  /** Fail the whole connection (never throws). */
  protocolViolation(message: string): void;
  /** How long a transfer may wait for the agent's next frame. */
  readonly idleTimeoutMs: number;
}

const UPLOAD_CHUNK_BYTES = 256 << 10;
const DOWNLOAD_CHUNK_BYTES = 256 << 10;
export const DOWNLOAD_WINDOW = 16;
/** Credits go back in batches to keep the control traffic small. */
const CREDIT_BATCH = 4;
const ANSWER_TIMEOUT_MS = 60_000;

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: SandpoolError) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: SandpoolError) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // observed later, or not at all when the upload fails first
  return { promise, resolve, reject };
}

async function withTimeout<T>(promise: Promise<T>, what: string, signal?: AbortSignal, limitMs = ANSWER_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BackendError(`${what}: the session agent did not answer`)), limitMs);
    onAbort = () => reject(new AbortedError(`${what} aborted`));
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

export async function uploadFile(
  t: FileTransport,
  path: string,
  data: AsyncIterable<Uint8Array>,
  options: { maxBytes: number; signal?: AbortSignal | undefined },
): Promise<FileInfo> {
  const { maxBytes, signal } = options;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new InvalidRequestError('maxBytes must be a non-negative integer');
  if (signal?.aborted) throw new AbortedError('upload aborted');
  const result = deferred<FileInfo>();
  let failed: SandpoolError | undefined;
  const id = t.open({
    onFrame: (frame) => {
      if (frame.type === 'error') {
        failed = agentError(frame.code, frame.message, `upload of ${path}`);
        result.reject(failed);
      } else if (frame.type === 'result' && frame.file) {
        result.resolve(frame.file);
      } else {
        failed = new BackendError(`upload of ${path}: unexpected ${frame.type} frame`);
        result.reject(failed);
      }
      return true;
    },
    onClose: (error) => {
      failed = error;
      result.reject(error);
    },
  });
  let total = 0;
  try {
    await t.sendAndDrain({ op: 'files.upload', id, path, maxBytes });
    outer: for await (const chunk of data) {
      if (failed) break;
      if (signal?.aborted) throw new AbortedError('upload aborted');
      if (!(chunk instanceof Uint8Array)) throw new InvalidRequestError('upload data must yield Uint8Array chunks');
      total += chunk.byteLength;
      if (total > maxBytes) {
        throw new FileError(ErrorCode.FILE_TOO_LARGE, `upload of ${path} exceeds the limit of ${maxBytes} bytes`);
      }
      for (let offset = 0; offset < chunk.byteLength; offset += UPLOAD_CHUNK_BYTES) {
        const piece = Buffer.from(
          chunk.buffer,
          chunk.byteOffset + offset,
          Math.min(UPLOAD_CHUNK_BYTES, chunk.byteLength - offset),
        );
        await t.sendAndDrain({ op: 'files.upload.chunk', id, data: piece.toString('base64') });
        if (failed) break outer;
      }
    }
    if (failed) throw failed;
    await t.sendAndDrain({ op: 'files.upload.end', id });
  } catch (error) {
    t.forget(id);
    t.send({ op: 'files.upload.abort', id });
    throw failed ?? toSandpoolError(error, `upload of ${path}`);
  }
  return await withTimeout(result.promise, `upload of ${path}`, undefined, t.idleTimeoutMs);
}

export async function downloadFile(
  t: FileTransport,
  path: string,
  options: { signal?: AbortSignal | undefined },
): Promise<{ info: FileInfo; body: AsyncIterable<Uint8Array> }> {
  const { signal } = options;
  const queue: Buffer[] = [];
  const info = deferred<FileInfo>();
  let gotInfo = false;
  let ended = false;
  let failure: SandpoolError | undefined;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const violate = (message: string): true => {
    failure = new BackendError(`download of ${path}: ${message}`);
    info.reject(failure);
    notify();
    queueMicrotask(() => t.protocolViolation(`download: ${message}`));
    return true;
  };
  const id = t.open({
    onFrame: (frame) => {
      switch (frame.type) {
        case 'file':
          if (gotInfo) return violate('second file frame');
          gotInfo = true;
          info.resolve(frame.file);
          return false;
        case 'chunk': {
          if (!gotInfo) return violate('chunk before file');
          // The agent may have at most DOWNLOAD_WINDOW chunks in flight; more means it ignores flow control.
          if (queue.length >= DOWNLOAD_WINDOW) return violate('agent ignored the credit window');
          const bytes = Buffer.from(frame.data, 'base64');
          if (bytes.length > DOWNLOAD_CHUNK_BYTES) return violate('oversized chunk');
          queue.push(bytes);
          notify();
          return false;
        }
        case 'end':
          if (!gotInfo) return violate('end before file');
          ended = true;
          notify();
          return true;
        case 'error':
          failure = agentError(frame.code, frame.message, `download of ${path}`);
          info.reject(failure);
          notify();
          return true;
        default:
          return violate(`unexpected ${frame.type} frame`);
      }
    },
    onClose: (error) => {
      failure = error;
      info.reject(error);
      notify();
    },
  });
  t.send({ op: 'files.download', id, path, window: DOWNLOAD_WINDOW });
  let fileInfo: FileInfo;
  try {
    fileInfo = await withTimeout(info.promise, `download of ${path}`, signal, t.idleTimeoutMs);
  } catch (error) {
    t.forget(id);
    t.send({ op: 'files.download.cancel', id });
    throw error;
  }

  async function* body(): AsyncGenerator<Uint8Array> {
    let uncredited = 0;
    const onAbort = (): void => notify();
    signal?.addEventListener('abort', onAbort);
    try {
      for (;;) {
        const chunk = queue.shift();
        if (chunk) {
          uncredited += 1;
          if (uncredited >= CREDIT_BATCH && !ended) {
            t.send({ op: 'files.download.credit', id, chunks: uncredited });
            uncredited = 0;
          }
          yield chunk;
          continue;
        }
        if (failure) throw failure;
        if (ended) return;
        if (signal?.aborted) throw new AbortedError(`download of ${path} aborted`);
        if (uncredited > 0) {
          // Everything we hold is consumed: return the credits now or the agent may stall.
          t.send({ op: 'files.download.credit', id, chunks: uncredited });
          uncredited = 0;
        }
        const idle = t.idleTimeoutMs;
        const stalled = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(true), idle);
          wake = () => {
            clearTimeout(timer);
            resolve(false);
          };
        });
        if (stalled && queue.length === 0 && !ended && !failure) {
          throw new BackendError(`download of ${path}: the session agent sent nothing for ${idle} ms`);
        }
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (!ended && !failure) {
        t.forget(id);
        t.send({ op: 'files.download.cancel', id });
      }
    }
  }
  return { info: fileInfo, body: body() };
}
