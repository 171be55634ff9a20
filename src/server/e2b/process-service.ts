/**
 * envd's `process.Process` Connect service: `Start` runs a command in the sandbox's session (the
 * same one `runCode` uses, so files and installed packages are shared) and streams `ProcessEvent`s:
 * `start{pid}`, `data{stdout|stderr}` (bytes as base64), `end{exitCode, exited, status}`, and
 * `keepalive` at the interval the client asks for. `List` shows running commands. A command is an
 * execution of the session: it waits for earlier executions and holds later ones until it ends.
 * PTYs, stdin, signals and reconnecting to a running command are not offered.
 */

import { z } from 'zod';

import type { E2bRequest } from './context.js';
import type { ServerStream } from './connect-rpc.js';
import { E2bError, badArgument, notFound, toE2bError, unsupported } from './errors.js';
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

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw badArgument(result.error.issues.map((i) => `${i.path.join('.') || 'message'}: ${i.message}`).join('; '));
}

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

const base64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

/**
 * The argv that runs the command: `env` sets the working directory and the variables, so the
 * command itself runs exactly as given (E2B sends `/bin/bash -l -c CMD`).
 */
function commandLine(process: z.infer<typeof StartRequest>['process']): string[] {
  const dir =
    process.cwd === undefined || process.cwd === null || process.cwd === '' ? SANDBOX_DATA_DIR : toSandboxDir(process.cwd);
  // After the variables, env treats the first word with "=" as one more variable.
  if (process.cmd.includes('=')) throw badArgument('cmd must not contain "="');
  const envs = Object.entries(process.envs ?? {}).map(([k, v]) => `${k}=${v}`);
  return ['env', '-C', dir, '--', ...envs, process.cmd, ...(process.args ?? [])];
}

/** Process.Start: the stream is open when this is called; it ends the stream itself. */
export async function startProcess(
  r: E2bRequest,
  live: LiveSandbox,
  message: Record<string, unknown>,
  stream: ServerStream,
): Promise<void> {
  const request = parse(StartRequest, message);
  if (request.pty !== undefined && request.pty !== null) throw unsupported('PTY sessions');
  if (!live.pool.backend.capabilities.languages.includes('shell'))
    throw unsupported(`commands on the ${live.pool.backend.name} backend`);
  const argv = commandLine(request.process);
  const sandbox = live.sandbox;
  const pid = sandbox.nextPid++;
  const running: RunningProcess = {
    pid,
    cmd: request.process.cmd,
    args: request.process.args ?? [],
    cwd: request.process.cwd ?? undefined,
    tag: request.tag ?? undefined,
    abort: new AbortController(),
  };
  sandbox.processes.set(pid, running);
  stream.send({ event: { start: { pid } } });
  const keepalive = setInterval(() => stream.send({ event: { keepalive: {} } }), keepaliveMs(r));
  keepalive.unref();
  try {
    const result = await live.session.execute({ language: 'shell', code: '', argv, timeoutInSeconds: timeoutSeconds(r) });
    if (result.stdout !== '') stream.send({ event: { data: { stdout: base64(result.stdout) } } });
    if (result.stderr !== '') stream.send({ event: { data: { stderr: base64(result.stderr) } } });
    if (result.error !== undefined && result.exitCode === undefined) throw toE2bError(result.error);
    if (result.error !== undefined) {
      // The command ran past its deadline and was killed (SDK: TimeoutError).
      stream.end(new E2bError(504, 'deadline_exceeded', result.error.message));
      return;
    }
    const exitCode = result.exitCode ?? (result.status === 'Succeeded' ? 0 : 1);
    const status = exitCode > 128 ? `signal: killed (exit status ${exitCode})` : `exit status ${exitCode}`;
    stream.send({ event: { end: { exitCode, exited: true, status, ...(exitCode === 0 ? {} : { error: status }) } } });
    stream.end();
  } finally {
    clearInterval(keepalive);
    sandbox.processes.delete(pid);
  }
}

function selectedPid(message: Record<string, unknown>): number {
  const selector = message['process'];
  const pid = typeof selector === 'object' && selector !== null ? (selector as Record<string, unknown>)['pid'] : undefined;
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid < 0) throw badArgument('process.pid is required');
  return pid;
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
    case 'SendSignal':
    case 'SendInput':
    case 'StreamInput':
    case 'CloseStdin':
    case 'Update': {
      const pid = name === 'StreamInput' ? undefined : selectedPid(message);
      if (pid !== undefined && !live.sandbox.processes.has(pid)) throw notFound(`process with pid ${pid} not found`);
      throw unsupported(name === 'SendSignal' ? 'signalling a running command' : 'stdin and PTY input for commands');
    }
    default:
      throw new E2bError(404, 'unimplemented', `process.Process/${name.slice(0, 64)} does not exist`);
  }
}

/** Process.Connect (streaming): reattaching to a running command's output is not offered. */
export function connectProcess(live: LiveSandbox, message: Record<string, unknown>): never {
  const pid = selectedPid(message);
  if (!live.sandbox.processes.has(pid)) throw notFound(`process with pid ${pid} not found`);
  throw unsupported('reconnecting to a running command');
}
