/**
 * A minimal QMP (QEMU Machine Protocol) client over QEMU's unix control socket. QMP is newline
 * delimited JSON: a greeting, `qmp_capabilities`, then `{"execute":...}` commands answered in order
 * with `{"return":...}` or `{"error":...}`, interleaved with asynchronous `{"event":...}` messages.
 * QEMU is ours, but the guest can influence some of what it reports, so lines are still bounded.
 */

import { connect, type Socket } from 'node:net';

import { BackendError } from '../../src/errors.js';

const MAX_LINE_BYTES = 1 << 20;

export interface QmpEvent {
  readonly event: string;
  readonly data?: Record<string, unknown>;
}

interface Waiter {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

export class QmpClient {
  readonly #socket: Socket;
  readonly #waiters: Waiter[] = [];
  readonly #eventListeners = new Set<(event: QmpEvent) => void>();
  #buffer = '';
  #closed: Error | undefined;
  #greeted: Waiter | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.#onData(chunk));
    socket.on('error', (error) => this.#fail(new BackendError(`QMP socket failed: ${error.message}`, { cause: error })));
    socket.on('close', () => this.#fail(new BackendError('QMP connection closed (QEMU exited?)')));
  }

  /** Connect, read the greeting and enter command mode. */
  static async connect(path: string, timeoutMs = 10_000): Promise<QmpClient> {
    const socket = connect(path);
    const client = new QmpClient(socket);
    const timer = setTimeout(() => client.#fail(new BackendError(`QMP handshake timed out after ${timeoutMs} ms`)), timeoutMs);
    try {
      await new Promise<unknown>((resolve, reject) => {
        client.#greeted = { resolve, reject };
      });
      await client.execute('qmp_capabilities');
      return client;
    } catch (error) {
      client.close();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Run one command; resolves with its `return` value. */
  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.#closed) throw this.#closed;
    const line = JSON.stringify(args === undefined ? { execute: command } : { execute: command, arguments: args });
    return await new Promise<unknown>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#socket.write(`${line}\n`);
    });
  }

  /** Subscribe to asynchronous events (STOP, RESUME, MIGRATION…); returns the unsubscribe function. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.#eventListeners.add(listener);
    return () => this.#eventListeners.delete(listener);
  }

  close(): void {
    this.#fail(new BackendError('QMP connection closed'));
    this.#socket.destroy();
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    let newline: number;
    while ((newline = this.#buffer.indexOf('\n')) >= 0) {
      const line = this.#buffer.slice(0, newline).trim();
      this.#buffer = this.#buffer.slice(newline + 1);
      if (line.length > 0) this.#onMessage(line);
    }
    if (this.#buffer.length > MAX_LINE_BYTES) {
      this.#fail(new BackendError('QMP sent an over-long line'));
      this.#socket.destroy();
    }
  }

  #onMessage(line: string): void {
    let message: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed !== 'object' || parsed === null) return;
      message = parsed as Record<string, unknown>;
    } catch {
      return;
    }
    if ('QMP' in message) {
      this.#greeted?.resolve(undefined);
      this.#greeted = undefined;
    } else if (typeof message['event'] === 'string') {
      const event: QmpEvent = { event: message['event'], data: message['data'] as Record<string, unknown> };
      for (const listener of this.#eventListeners) listener(event);
    } else if ('return' in message) {
      this.#waiters.shift()?.resolve(message['return']);
    } else if ('error' in message) {
      const error = message['error'] as { class?: string; desc?: string } | undefined;
      this.#waiters.shift()?.reject(new BackendError(`QMP: ${error?.desc ?? 'unknown error'} (${error?.class ?? '?'})`));
    }
  }

  #fail(error: Error): void {
    if (this.#closed) return;
    this.#closed = error;
    this.#greeted?.reject(error);
    this.#greeted = undefined;
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
  }
}
