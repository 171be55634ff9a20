/**
 * Host-side client of the sandpool agent (agent/PROTOCOL.md) over any byte stream: a container's
 * attached stdio, a unix socket, or a VM's virtio-serial port. The agent is inside the sandbox and
 * therefore untrusted: every frame is size-bounded and validated, output is capped here as well,
 * every call has a host-side deadline, and the moment the stream closes every pending call fails.
 */

import { randomInt } from 'node:crypto';
import type { Duplex } from 'node:stream';

import type { BackendExecuteOptions, ExecuteRequest, ExecutionOutcome, FileInfo } from '../../../src/backend.js';
import { AbortedError, BackendError, type SandpoolError } from '../../../src/errors.js';
import { agentError } from './agent-errors.js';
import { validateExecute } from './execute-request.js';
import { FrameReader, FrameTooLargeError } from './frame-reader.js';
import { downloadFile, uploadFile, type FileTransport } from './file-transfer.js';
import { OutputCollector } from './output-collector.js';
import {
  PROTOCOL_VERSION,
  parseAgentFrame,
  ProtocolError,
  type AgentFrame,
  type AgentInfo,
  type AgentReady,
  type FrameId,
} from './protocol.js';

export interface AgentClientOptions {
  /** Called once when the stream closes or the client fails; pending calls are already rejected. */
  readonly onClose?: ((error: SandpoolError) => void) | undefined;
  /** Longest frame accepted from the agent. @default 40 MiB */
  readonly maxFrameBytes?: number | undefined;
  /**
   * Extra time beyond an execution's `timeoutMs` before the host stops waiting for the agent, marks
   * the execution `lost` and closes the connection. Covers the agent's own interrupt grace. @default 10 s
   */
  readonly executeGraceMs?: number | undefined;
  /** Deadline of the other requests (file metadata, info, hello). @default 60 s */
  readonly requestTimeoutMs?: number | undefined;
}

/** What the client does with frames of one request; returns true when the request is finished. */
export interface Pending {
  onFrame(frame: AgentFrame): boolean;
  onClose(error: SandpoolError): void;
}

export class AgentClient implements FileTransport {
  readonly #stream: Duplex;
  readonly #options: AgentClientOptions;
  readonly #reader: FrameReader;
  readonly #pending = new Map<FrameId, Pending>();
  // Random start: after a reconnect (unix socket, virtio-serial) frames for an earlier client's
  // requests may still arrive, and must not match this client's ids.
  #nextId = randomInt(1, 2 ** 40);
  #closedError: SandpoolError | undefined;
  #ready: AgentReady | undefined;
  readonly #readyWaiters = new Set<(ready: AgentReady) => void>();

  constructor(stream: Duplex, options: AgentClientOptions = {}) {
    this.#stream = stream;
    this.#options = options;
    this.#reader = new FrameReader(options.maxFrameBytes ?? 40 << 20);
    stream.on('data', (chunk: Buffer | string) => this.#onData(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
    stream.on('error', (error) => this.#fail(new BackendError(`agent stream failed: ${error.message}`, { cause: error })));
    stream.on('close', () => this.#fail(new BackendError('agent connection closed')));
    stream.on('end', () => this.#fail(new BackendError('agent connection ended')));
  }

  /** True once the stream closed or the client failed; every call then rejects at once. */
  get closed(): boolean {
    return this.#closedError !== undefined;
  }

  /** The last readiness announcement, if one arrived. */
  get readyInfo(): AgentReady | undefined {
    return this.#ready;
  }

  /** Resolves when the agent says its kernel is up (asks with `hello` in case the first frame was missed). */
  async ready(signal?: AbortSignal): Promise<AgentReady> {
    this.#assertOpen();
    if (this.#ready) return this.#ready;
    return await new Promise<AgentReady>((resolve, reject) => {
      const cleanup = (): void => {
        this.#readyWaiters.delete(onReady);
        this.#pending.delete(id);
        signal?.removeEventListener('abort', onAbort);
      };
      const onReady = (ready: AgentReady): void => {
        cleanup();
        resolve(ready);
      };
      const onAbort = (): void => {
        cleanup();
        reject(new AbortedError('waiting for the agent to be ready was aborted'));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#readyWaiters.add(onReady);
      const id = this.#register({
        onFrame: (frame) => {
          if (frame.type === 'error') {
            cleanup();
            reject(agentError(frame.code, frame.message, 'agent hello failed'));
          }
          return true;
        },
        onClose: (error) => {
          cleanup();
          reject(error);
        },
      });
      this.#send({ op: 'hello', id });
    });
  }

  /**
   * Run code. Never rejects for what the code did; rejects when the request cannot run. Output and
   * displayed images reach `onOutput` as the agent streams them.
   */
  async execute(request: ExecuteRequest, options: BackendExecuteOptions = {}): Promise<ExecutionOutcome> {
    this.#assertOpen();
    validateExecute(request);
    const signal = options.signal;
    if (signal?.aborted) throw new AbortedError('execution aborted before it started');
    const output = new OutputCollector(request.outputMaxBytes, options.onOutput);
    const started = Date.now();
    const runLimit = request.timeoutMs + (this.#options.executeGraceMs ?? 10_000);
    return await new Promise<ExecutionOutcome>((resolve, reject) => {
      const onDeadline = (): void => {
        cleanup();
        resolve(
          output.finish(
            {
              status: 'Failed',
              result: '',
              sessionState: 'lost',
              timedOut: true,
              executionTimeInMilliseconds: Date.now() - started,
            },
            'sandpool: the session agent did not answer after the time limit; the session is lost\n',
          ),
        );
        this.#fail(new BackendError('agent did not answer an execution within its deadline'));
      };
      // Until the agent says the execution started, it may be waiting for a kernel restart: allow
      // a request timeout for that on top. From `started` on, only the time limit plus grace.
      let deadline = setTimeout(onDeadline, runLimit + (this.#options.requestTimeoutMs ?? 60_000));
      const onAbort = (): void => {
        cleanup();
        output.stop();
        if (!this.closed) this.#send({ op: 'execute.cancel', id });
        reject(new AbortedError('execution aborted'));
      };
      const cleanup = (): void => {
        clearTimeout(deadline);
        signal?.removeEventListener('abort', onAbort);
        this.#pending.delete(id);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const id = this.#register({
        onFrame: (frame) => {
          if (frame.type === 'output') {
            output.add(frame.stream, frame.data);
            return false;
          }
          if (frame.type === 'display') {
            output.display(frame.image);
            return false;
          }
          if (frame.type === 'started') {
            clearTimeout(deadline);
            deadline = setTimeout(onDeadline, runLimit);
            return false;
          }
          cleanup();
          if (frame.type !== 'result' || !frame.outcome) output.stop();
          if (frame.type === 'result' && frame.outcome) resolve(output.finish(frame.outcome));
          else if (frame.type === 'error') reject(agentError(frame.code, frame.message, 'execution refused by the agent'));
          else reject(this.#violation(`unexpected ${frame.type} frame for an execution`));
          return true;
        },
        onClose: (error) => {
          cleanup();
          output.stop();
          reject(error);
        },
      });
      this.#send({
        op: 'execute',
        id,
        language: request.language,
        code: request.code,
        timeoutMs: request.timeoutMs,
        outputMaxBytes: request.outputMaxBytes,
        ...(request.argv !== undefined ? { argv: request.argv } : {}),
        ...(request.stdin !== undefined ? { stdin: request.stdin } : {}),
        ...(request.env !== undefined && Object.keys(request.env).length > 0 ? { env: request.env } : {}),
      });
    });
  }

  /**
   * Bind environment variables to the session: executions whose frames follow this one see them
   * (the agent applies `env.set` in frame order), and so do kernels and commands started later.
   * The values are secrets: they travel only in this frame and never appear in an error.
   */
  async setEnvironment(env: Readonly<Record<string, string>>): Promise<void> {
    await this.request({ op: 'env.set', env }, 'set the session environment');
  }

  /** Stream `data` into `path` (relative to the data dir); the agent renames it into place at the end. */
  async upload(
    path: string,
    data: AsyncIterable<Uint8Array>,
    options: { maxBytes: number; signal?: AbortSignal | undefined },
  ): Promise<FileInfo> {
    this.#assertOpen();
    return await uploadFile(this, path, data, options);
  }

  async list(options: { path: string; recursive: boolean }): Promise<FileInfo[]> {
    const frame = await this.request({ op: 'files.list', path: options.path, recursive: options.recursive }, 'list files');
    if (frame.type !== 'result' || !frame.files) return this.#protocolViolation('files.list answered without files');
    return frame.files;
  }

  async stat(path: string): Promise<FileInfo> {
    const frame = await this.request({ op: 'files.stat', path }, 'stat file');
    if (frame.type !== 'result' || !frame.file) return this.#protocolViolation('files.stat answered without a file');
    return frame.file;
  }

  /** Stream a file out; `body` must be consumed or broken out of (which cancels the transfer). */
  async download(
    path: string,
    options: { signal?: AbortSignal | undefined } = {},
  ): Promise<{ info: FileInfo; body: AsyncIterable<Uint8Array> }> {
    this.#assertOpen();
    return await downloadFile(this, path, options);
  }

  async delete(path: string): Promise<void> {
    await this.request({ op: 'files.delete', path }, 'delete file');
  }

  /**
   * Replace a language's kernel with a fresh one (all state dropped), after the running execution.
   * Resolves when the new Python kernel is ready; JavaScript's restarts on its next execution.
   */
  async restartKernel(language: 'python' | 'javascript', timeoutMs = 180_000): Promise<void> {
    await this.request({ op: 'kernel.restart', language }, `restart the ${language} kernel`, timeoutMs);
  }

  /** Round trip to the agent; resolves with the elapsed milliseconds, rejects after `timeoutMs`. */
  async ping(timeoutMs = 5000): Promise<number> {
    const started = performance.now();
    await this.request({ op: 'ping' }, 'ping', timeoutMs);
    return performance.now() - started;
  }

  async info(): Promise<AgentInfo> {
    const frame = await this.request({ op: 'info' }, 'agent info');
    if (frame.type !== 'info') return this.#protocolViolation('info answered with the wrong frame');
    return frame.info;
  }

  /** Close the connection; pending calls reject with a BackendError. Idempotent. */
  close(): void {
    this.#fail(new BackendError('agent client closed'));
  }

  // ---- FileTransport (used by file-transfer.ts) and internals ----

  /** One request, one answer frame (`result`, `pong`, `info`); an `error` frame rejects. */
  async request(body: Record<string, unknown>, what: string, timeoutMs?: number): Promise<AgentFrame> {
    this.#assertOpen();
    const limit = timeoutMs ?? this.#options.requestTimeoutMs ?? 60_000;
    return await new Promise<AgentFrame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new BackendError(`${what}: the session agent did not answer within ${limit} ms`));
      }, limit);
      const id = this.#register({
        onFrame: (frame) => {
          clearTimeout(timer);
          if (frame.type === 'error') reject(agentError(frame.code, frame.message, what));
          else resolve(frame);
          return true;
        },
        onClose: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.#send({ ...body, id });
    });
  }

  /** Register a multi-frame request; the caller sends frames with the returned id. */
  open(pending: Pending): FrameId {
    this.#assertOpen();
    return this.#register(pending);
  }

  /** Forget a request (its later frames are ignored). */
  forget(id: FrameId): void {
    this.#pending.delete(id);
  }

  /**
   * Write a frame; resolves when the stream can take more (backpressure for uploads). An agent
   * that stops reading for `requestTimeoutMs` is treated as hung: the connection is failed.
   */
  async sendAndDrain(frame: Record<string, unknown>): Promise<void> {
    this.#assertOpen();
    if (this.#send(frame)) return;
    const limit = this.#options.requestTimeoutMs ?? 60_000;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#stream.off('drain', done);
        this.#stream.off('close', done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#fail(new BackendError(`the session agent stopped reading for ${limit} ms`));
        done();
      }, limit);
      this.#stream.on('drain', done);
      this.#stream.on('close', done);
    });
    this.#assertOpen();
  }

  /** How long a transfer may wait for the agent's next frame. */
  get idleTimeoutMs(): number {
    return this.#options.requestTimeoutMs ?? 60_000;
  }

  send(frame: Record<string, unknown>): void {
    if (!this.closed) this.#send(frame);
  }

  /** Fail the whole connection: the agent broke the protocol. Never throws. */
  protocolViolation(message: string): void {
    this.#violation(message);
  }

  #register(pending: Pending): FrameId {
    const id = this.#nextId++;
    this.#pending.set(id, pending);
    return id;
  }

  #send(frame: Record<string, unknown>): boolean {
    return this.#stream.write(`${JSON.stringify(frame)}\n`);
  }

  #assertOpen(): void {
    if (this.#closedError) throw this.#closedError;
  }

  #onData(chunk: Buffer): void {
    if (this.closed) return;
    let frames: Buffer[];
    try {
      frames = this.#reader.push(chunk);
    } catch (error) {
      if (error instanceof FrameTooLargeError) {
        this.#violation(error.message);
        return;
      }
      throw error;
    }
    for (const line of frames) {
      if (this.closed) return;
      if (line.length === 0) continue;
      let frame: AgentFrame;
      try {
        frame = parseAgentFrame(line);
      } catch (error) {
        if (error instanceof ProtocolError) {
          this.#violation(error.message);
          return;
        }
        throw error;
      }
      this.#dispatch(frame);
    }
  }

  #dispatch(frame: AgentFrame): void {
    if (frame.type === 'ready') {
      if (frame.ready.protocol !== PROTOCOL_VERSION) {
        this.#violation(`agent speaks protocol ${frame.ready.protocol}, expected ${PROTOCOL_VERSION}`);
        return;
      }
      this.#ready = frame.ready;
      for (const waiter of [...this.#readyWaiters]) waiter(frame.ready);
      if (frame.id !== null) this.#pending.delete(frame.id);
      return;
    }
    // Frames for forgotten requests (cancelled downloads, timed-out pings) are dropped on purpose.
    if (frame.id === null) return;
    const pending = this.#pending.get(frame.id);
    if (pending?.onFrame(frame)) this.#pending.delete(frame.id);
  }

  /** Fails the connection (rejecting every pending call) and returns the error. Never throws. */
  #violation(message: string): BackendError {
    const error = new BackendError(`session agent protocol violation: ${message}`);
    this.#fail(error);
    return error;
  }

  /** For async methods: fail the connection and throw. */
  #protocolViolation(message: string): never {
    throw this.#violation(message);
  }

  #fail(error: SandpoolError): void {
    if (this.#closedError) return;
    this.#closedError = error;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.onClose(error);
    this.#readyWaiters.clear();
    this.#stream.destroy();
    try {
      this.#options.onClose?.(error);
    } catch {
      // A failing callback must not escape into the stream's event handlers (and crash the host).
    }
  }
}
