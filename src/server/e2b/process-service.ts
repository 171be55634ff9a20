/**
 * envd's `process.Process` Connect service: `Start` runs a command in the sandbox's session (the
 * same one `runCode` uses, so files and installed packages are shared) and streams `ProcessEvent`s
 * as it runs: `start{pid}`, `data{stdout|stderr}` (bytes as base64), `end{exitCode, exited,
 * status}`, and `keepalive` at the interval the client asks for. `Connect` attaches another stream
 * to a running command, `List` shows them, `SendSignal` kills one. A command is an execution of the
 * session: it waits for earlier executions and holds later ones until it ends. A client that goes
 * away does not stop it (E2B's semantics). PTYs and stdin are not offered.
 */

import { z } from 'zod';

import type { OutputChunk } from '../../backend.js';
import { ErrorCode, SandpoolError } from '../../errors.js';
import type { ExecutionResult } from '../../session-types.js';
import type { E2bRequest } from './context.js';
import type { ServerStream } from './connect-rpc.js';
import { E2bError, badArgument, parseOrRefuse, notFound, toE2bError, unsupported } from './errors.js';
import { SANDBOX_DATA_DIR, toSandboxDir } from './paths.js';
import type { LiveSandbox, RunningProcess } from './sandboxes.js';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,255}$/;

const StartRequest = z.object({
  process: z.object({
    cmd: z.string().min(1).max(4096),
    args: z
      .array(z.string().max(4 * 1024 * 1024))
      .max(4096)
      .nullish(),
    envs: z.record(z.string().regex(ENV_NAME), z.string().max(131_072)).nullish(),
    cwd: z.string().nullish(),
  }),
  pty: z.unknown().optional(),
  tag: z.string().max(256).nullish(),
  stdin: z.boolean().nullish(),
});

/** `Connect-Timeout-Ms`, as seconds for the execution (the pool's limit still caps it). */
function timeoutSeconds(r: E2bRequest): number | undefined {
  const header = r.req.headers['connect-timeout-ms'];
  if (typeof header !== 'string' || !/^\d{1,10}$/.test(header)) return undefined;
  const ms = Number(header);
  return ms > 0 ? Math.max(1, Math.ceil(ms / 1000)) : undefined;
}

function keepaliveMs(r: E2bRequest): number {
  const header = r.req.headers['keepalive-ping-interval'];
  const seconds = typeof header === 'string' && /^\d{1,6}$/.test(header) ? Number(header) : 50;
  return Math.min(Math.max(seconds, 1), 300) * 1000;
}

/**
 * The argv that runs the command: `env -C` sets the working directory, so the command itself runs
 * exactly as given (E2B sends `/bin/bash -l -c CMD`). Its variables travel as the execution's env.
 */
function commandLine(process: z.infer<typeof StartRequest>['process']): string[] {
  const dir =
    process.cwd === undefined || process.cwd === null || process.cwd === '' ? SANDBOX_DATA_DIR : toSandboxDir(process.cwd);
  // After the options, env would read a first word with "=" as a variable.
  if (process.cmd.includes('=')) throw badArgument('cmd must not contain "="');
  return ['env', '-C', dir, '--', process.cmd, ...(process.args ?? [])];
}

function attach(running: RunningProcess, stream: ServerStream, r: E2bRequest): void {
  stream.send({ event: { start: { pid: running.pid } } });
  const keepalive = setInterval(() => stream.send({ event: { keepalive: {} } }), keepaliveMs(r));
  keepalive.unref();
  running.streams.set(stream, keepalive);
}

function broadcast(running: RunningProcess, message: object): void {
  for (const stream of running.streams.keys()) stream.send(message);
}

function dataEvent(chunk: OutputChunk): object | undefined {
  if (chunk.type === 'display') return undefined;
  return { event: { data: { [chunk.type]: Buffer.from(chunk.text, 'utf8').toString('base64') } } };
}

/** How the command ended: an `end` event, or an error for the end-stream message. */
function ending(result: ExecutionResult): { event: object } | { error: E2bError } {
  if (result.error?.code === ErrorCode.EXECUTION_TIMEOUT) {
    // The command ran past its deadline and was killed (SDK: TimeoutError).
    return { error: new E2bError(504, 'deadline_exceeded', result.error.message) };
  }
  if (result.error !== undefined && result.exitCode === undefined) return { error: toE2bError(result.error) };
  const exitCode = result.exitCode ?? (result.status === 'Succeeded' ? 0 : 1);
  const status = `exit status ${exitCode}`;
  return { event: { event: { end: { exitCode, exited: true, status, ...(exitCode === 0 ? {} : { error: status }) } } } };
}

/** Process.Start: the stream is open; this ends it (and every stream attached since) when the command ends. */
export async function startProcess(
  r: E2bRequest,
  live: LiveSandbox,
  message: Record<string, unknown>,
  stream: ServerStream,
): Promise<void> {
  const request = parseOrRefuse(StartRequest, message);
  if (request.pty !== undefined && request.pty !== null) throw unsupported('PTY sessions');
  if (!live.pool.backend.capabilities.languages.includes('shell'))
    throw unsupported(`commands on the ${live.pool.backend.name} backend`);
  const argv = commandLine(request.process);
  const envs = request.process.envs ?? {};
  const sandbox = live.sandbox;
  let finished!: () => void;
  const running: RunningProcess = {
    pid: sandbox.nextPid++,
    cmd: request.process.cmd,
    args: request.process.args ?? [],
    cwd: request.process.cwd ?? undefined,
    tag: request.tag ?? undefined,
    abort: new AbortController(),
    streams: new Map(),
    done: new Promise<void>((resolve) => {
      finished = resolve;
    }),
  };
  sandbox.processes.set(running.pid, running);
  attach(running, stream, r);
  let outcome: { event: object } | { error: E2bError };
  try {
    const result = await live.session.execute({
      language: 'shell',
      code: '',
      argv,
      timeoutInSeconds: timeoutSeconds(r),
      signal: running.abort.signal,
      onOutput: (chunk) => {
        const event = dataEvent(chunk);
        if (event !== undefined) broadcast(running, event);
      },
      ...(Object.keys(envs).length === 0 ? {} : { env: envs }),
    });
    outcome = ending(result);
  } catch (error) {
    const killed = running.abort.signal.aborted && SandpoolError.is(error) && error.code === ErrorCode.ABORTED;
    // A killed command ends like one that died of SIGKILL (Go's ProcessState: -1, not exited).
    outcome = killed
      ? { event: { event: { end: { exitCode: -1, exited: false, status: 'signal: killed' } } } }
      : { error: toE2bError(error) };
  } finally {
    sandbox.processes.delete(running.pid);
  }
  for (const [attached, keepalive] of running.streams) {
    clearInterval(keepalive);
    if ('event' in outcome) {
      attached.send(outcome.event);
      attached.end();
    } else {
      attached.end(outcome.error);
    }
  }
  running.streams.clear();
  finished();
}

function selectedPid(message: Record<string, unknown>): number {
  const selector = message['process'];
  const pid = typeof selector === 'object' && selector !== null ? (selector as Record<string, unknown>)['pid'] : undefined;
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid < 0) throw badArgument('process.pid is required');
  return pid;
}

function runningProcess(live: LiveSandbox, message: Record<string, unknown>): RunningProcess {
  const pid = selectedPid(message);
  const running = live.sandbox.processes.get(pid);
  if (running === undefined) throw notFound(`process with pid ${pid} not found`);
  return running;
}

/** Process.Connect: attach one more stream to a running command, until it ends. */
export async function connectProcess(
  r: E2bRequest,
  live: LiveSandbox,
  message: Record<string, unknown>,
  stream: ServerStream,
): Promise<void> {
  const running = runningProcess(live, message);
  attach(running, stream, r);
  await running.done;
}

/** Unary methods of the Process service. */
export async function processMethod(name: string, live: LiveSandbox, message: Record<string, unknown>): Promise<object> {
  switch (name) {
    case 'List':
      return {
        processes: [...live.sandbox.processes.values()].map((p) => ({
          // Variables may be secrets: they are not echoed back.
          config: { cmd: p.cmd, args: p.args, envs: {}, ...(p.cwd === undefined ? {} : { cwd: p.cwd }) },
          pid: p.pid,
          ...(p.tag === undefined ? {} : { tag: p.tag }),
        })),
      };
    case 'SendSignal': {
      const running = runningProcess(live, message);
      // SIGTERM and SIGKILL both end the command: the session interrupts it like a timeout.
      running.abort.abort();
      return {};
    }
    case 'SendInput':
    case 'StreamInput':
    case 'CloseStdin':
    case 'Update': {
      if (name !== 'StreamInput') runningProcess(live, message);
      throw unsupported('stdin and PTY input for commands');
    }
    default:
      throw new E2bError(404, 'unimplemented', `process.Process/${name.slice(0, 64)} does not exist`);
  }
}
