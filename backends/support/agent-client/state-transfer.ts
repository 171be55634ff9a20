/**
 * Interpreter-level checkpoints over the agent protocol (agent/PROTOCOL.md, `checkpoint` and
 * `restore`). The state travels as raw bytes over a unix socket the host listens on and the agent
 * connects to (base64 in JSON frames would cost seconds for a 100 MB DataFrame); the report comes
 * back as the request's `result` frame. The bytes are the agent's own format: the host stores them
 * verbatim, bounds their size (the sandbox is not trusted) and checks only that the stream ends
 * with the agent's end record, so a truncated checkpoint is never taken for a complete one.
 */

import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { AbortedError, BackendError } from '../../../src/errors.js';
import type { AgentClient } from './agent-client.js';
import type { AgentStateReport } from './protocol.js';

/** The agent's end-of-checkpoint record: type `Z`, length 0. */
const END_RECORD = Buffer.from([0x5a, 0, 0, 0, 0]);

export interface StateSocket {
  /** Where the host listens (a fresh path; removed afterwards). */
  readonly hostPath: string;
  /** The same socket as the agent sees it inside the sandbox. */
  readonly agentPath: string;
  /** Let the agent's user connect (chown or chmod the socket file). */
  readonly grant: (path: string) => void;
}

export interface StateTransferOptions {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
}

/** Listen on the socket for exactly one connection; `connection` resolves with it. */
async function listenOnce(socket: StateSocket): Promise<{ server: Server; connection: Promise<Socket> }> {
  rmSync(socket.hostPath, { force: true });
  const server = createServer();
  const connection = new Promise<Socket>((resolve) => {
    server.once('connection', (conn) => {
      server.close(); // one connection only: whoever else tries is refused
      // Errors after the transfer settled (the agent hung up first) are expected; the transfer
      // itself reports what matters through its pipeline.
      conn.on('error', () => undefined);
      resolve(conn);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket.hostPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  socket.grant(socket.hostPath);
  return { server, connection };
}

/** Read and write a state in 1 MiB pieces (64 KiB by default): a 100 MB state is 100 turns, not 1,600. */
const TRANSFER_CHUNK = 1 << 20;

/** Race `work` against the deadline and the signal; always runs `cleanup`. */
async function bounded<T>(work: Promise<T>, what: string, options: StateTransferOptions, cleanup: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new BackendError(`${what} did not finish within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    onAbort = () => reject(new AbortedError(`${what} aborted`));
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, guard]);
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) options.signal?.removeEventListener('abort', onAbort);
    cleanup();
  }
}

/** Counts the bytes, refuses more than `maxBytes`, keeps the last few for the end check. */
function capped(maxBytes: number): Transform & { bytes: number; tail: Buffer } {
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      counter.bytes += chunk.length;
      if (counter.bytes > maxBytes) {
        done(new BackendError(`the session's checkpoint exceeds its limit of ${maxBytes} bytes`));
        return;
      }
      counter.tail = Buffer.concat([counter.tail, chunk.subarray(-END_RECORD.length)]).subarray(-END_RECORD.length);
      done(null, chunk);
    },
  }) as Transform & { bytes: number; tail: Buffer };
  counter.bytes = 0;
  counter.tail = Buffer.alloc(0);
  return counter;
}

/**
 * Ask the agent for a checkpoint and write its bytes to `file` (created 0600; must not exist).
 * Resolves with the agent's report and the byte count.
 */
export async function checkpointToFile(
  client: AgentClient,
  socket: StateSocket,
  file: string,
  options: StateTransferOptions & { readonly maxBytes: number },
): Promise<{ report: AgentStateReport; bytes: number }> {
  const { server, connection } = await listenOnce(socket);
  const counter = capped(options.maxBytes);
  let conn: Socket | undefined;
  const received = connection.then(async (c) => {
    conn = c;
    await pipeline(c, counter, createWriteStream(file, { flags: 'wx', mode: 0o600, highWaterMark: TRANSFER_CHUNK }));
  });
  received.catch(() => undefined);
  const answered = client.request(
    { op: 'checkpoint', socket: socket.agentPath, timeoutMs: options.timeoutMs },
    'checkpoint',
    options.timeoutMs + 10_000,
  );
  const work = (async () => {
    const [frame] = await Promise.all([answered, received]);
    if (frame.type !== 'result' || frame.checkpoint === undefined)
      throw new BackendError('the agent answered a checkpoint without a report');
    if (!counter.tail.equals(END_RECORD)) throw new BackendError('the session checkpoint is truncated (no end record)');
    return { report: frame.checkpoint, bytes: counter.bytes };
  })();
  return await bounded(work, 'checkpoint', options, () => {
    server.close();
    conn?.destroy();
    rmSync(socket.hostPath, { force: true });
  });
}

/** Stream `file` (written by `checkpointToFile`) into the agent, which loads it into its session. */
export async function restoreFromFile(
  client: AgentClient,
  socket: StateSocket,
  file: string,
  options: StateTransferOptions & { readonly fork: boolean },
): Promise<AgentStateReport> {
  const source = createReadStream(file, { highWaterMark: TRANSFER_CHUNK });
  // Fail before the agent is asked when the checkpoint is missing or unreadable.
  await new Promise<void>((resolve, reject) => {
    source.once('open', () => resolve());
    source.once('error', (error) =>
      reject(new BackendError(`the session checkpoint cannot be read: ${error.message}`, { cause: error })),
    );
  });
  const { server, connection } = await listenOnce(socket);
  let conn: Socket | undefined;
  const sent = connection.then(async (c) => {
    conn = c;
    await pipeline(source, c);
  });
  sent.catch(() => undefined);
  const answered = client.request(
    { op: 'restore', socket: socket.agentPath, fork: options.fork, timeoutMs: options.timeoutMs },
    'restore',
    options.timeoutMs + 10_000,
  );
  const work = (async () => {
    const frame = await answered;
    if (frame.type !== 'result' || frame.restore === undefined)
      throw new BackendError('the agent answered a restore without a report');
    return frame.restore;
  })();
  return await bounded(work, 'restore', options, () => {
    server.close();
    conn?.destroy();
    source.destroy();
    rmSync(socket.hostPath, { force: true });
  });
}
