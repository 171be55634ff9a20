/**
 * The zygote of code-interpreter sessions, on the host side. One Python process per backend
 * (agent/sandpool_agent/zygote.py) imports the agent, the Python kernel and the data stack once;
 * each new session container then starts with nothing but a pause process, and the zygote forks a
 * ready agent into it (`spawnAgent`), which forks its kernel from itself. A session start costs a
 * container start and two forks instead of a Python start and a second of imports, and idle
 * sessions share the imported libraries' memory copy-on-write.
 *
 * The zygote runs as root on the host, in a mount namespace of its own, chrooted into the session
 * image's root filesystem (`podman image mount`, read-only), so it maps exactly the libraries a
 * session would. It gets the host's /proc and /sys/fs/cgroup as descriptors, reads everything a
 * container process is confined by from the container's own first process, and checks the agent
 * it forked against it before the agent runs (confine.py). It is tied to this process
 * (`setpriv --pdeathsig`) and speaks JSON lines on its stdin/stdout only.
 *
 * Only for a local, rootful Podman with runc or crun and no user namespace; anything else keeps the
 * classic start (the engine starts the agent, which imports everything itself). The backend falls
 * back to it, too, when the zygote cannot start or a spawn fails.
 */

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { promisify } from 'node:util';

import { BackendError } from '../../src/errors.js';

const execFileAsync = promisify(execFile);

/** Where the code-interpreter image keeps the agent (images/container/code-interpreter.Containerfile). */
const ZYGOTE_IN_IMAGE = '/opt/sandpool/agent/sandpool_agent/zygote.py';
/** The pause process a zygote session's container runs (static; bind-mounted read-only). */
export const PAUSE_BINARY = '/usr/bin/catatonit';
const TOOLS = ['/usr/bin/setpriv', '/usr/bin/unshare', '/usr/sbin/chroot', PAUSE_BINARY];

export interface ZygoteOptions {
  /** The code-interpreter image sessions run. */
  readonly image: string;
  /** Modules imported before the zygote forks anything; default: the agent's own preload list. */
  readonly preload?: readonly string[] | undefined;
  readonly log: (message: string) => void;
  /** Longest wait for the zygote to import everything and say ready. @default 180 000 */
  readonly startTimeoutMs?: number | undefined;
  /** Stops a start in progress (the backend closes). */
  readonly signal?: AbortSignal | undefined;
}

/** Why the zygote cannot be used here, or undefined when it can be tried. */
export function zygoteUnsupported(engine: { podman: boolean; local: boolean }, runtime: string | undefined): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'the backend does not run as root';
  if (!engine.podman || !engine.local) return 'the engine is not a local Podman';
  if (runtime !== undefined && !['runc', 'crun'].includes(runtime))
    return `runtime ${runtime} runs processes the zygote cannot enter`;
  const missing = TOOLS.filter((tool) => !existsSync(tool));
  return missing.length > 0 ? `missing ${missing.join(', ')}` : undefined;
}

interface Pending {
  resolve(pid: number): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export class Zygote {
  readonly #child: ChildProcess;
  readonly #image: string;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #buffer = '';
  #stderr = '';
  #failed: Error | undefined;
  #closed = false;
  /** Rejects a start still waiting for the ready line. */
  #notReady: ((error: Error) => void) | undefined;

  private constructor(child: ChildProcess, image: string) {
    this.#child = child;
    this.#image = image;
  }

  /** Mount the image, start the zygote, wait for its imports; rejects with the reason it cannot run. */
  static async start(options: ZygoteOptions): Promise<Zygote> {
    const root = (await execFileAsync('podman', ['image', 'mount', options.image])).stdout.trim();
    if (!root.startsWith('/') || !existsSync(`${root}${ZYGOTE_IN_IMAGE}`)) {
      await unmount(options.image);
      throw new BackendError(`the image ${options.image} has no zygote (${ZYGOTE_IN_IMAGE})`);
    }
    const inspected = JSON.parse((await execFileAsync('podman', ['image', 'inspect', options.image])).stdout) as {
      Config?: { Env?: string[] };
    }[];
    const env: Record<string, string> = {};
    for (const entry of inspected[0]?.Config?.Env ?? []) {
      const at = entry.indexOf('=');
      // As the agent gives its Python kernel: matplotlib's backend is chosen by the kernel's hook.
      if (at > 0 && entry.slice(0, at) !== 'MPLBACKEND') env[entry.slice(0, at)] = entry.slice(at + 1);
    }
    const proc = openSync('/proc', 'r');
    const cgroup = openSync('/sys/fs/cgroup', 'r');
    let child: ChildProcess;
    try {
      child = spawn(
        '/usr/bin/setpriv',
        [
          '--pdeathsig',
          'KILL',
          '--',
          '/usr/bin/unshare',
          '--mount',
          '--',
          '/usr/sbin/chroot',
          root,
          '/usr/bin/python3',
          '-u',
          ZYGOTE_IN_IMAGE,
          '--proc-fd',
          '3',
          '--cgroup-fd',
          '4',
          ...(options.preload === undefined ? [] : ['--preload', options.preload.join(',')]),
        ],
        { stdio: ['pipe', 'pipe', 'pipe', proc, cgroup], env, cwd: '/' },
      );
    } finally {
      closeSync(proc);
      closeSync(cgroup);
    }
    const zygote = new Zygote(child, options.image);
    const stop = (): void => zygote.#fail(new BackendError('the container zygote start was cancelled'));
    options.signal?.addEventListener('abort', stop, { once: true });
    try {
      if (options.signal?.aborted) throw new BackendError('the container zygote start was cancelled');
      const ready = await zygote.#listen(options.startTimeoutMs ?? 180_000);
      options.log(
        `container zygote ready (pid ${child.pid}, preloaded ${ready.preloaded.join(',') || '-'} in ${ready.preloadMs} ms)`,
      );
      return zygote;
    } catch (error) {
      await zygote.close();
      throw error;
    } finally {
      options.signal?.removeEventListener('abort', stop);
    }
  }

  /** False once the zygote died; sessions then start the classic way. */
  get alive(): boolean {
    return !this.#closed && this.#failed === undefined;
  }

  /**
   * Fork an agent into the container `container.id` whose first process has host pid
   * `container.pid` and runs `init` (checked first: until the runtime has exec'd it, that process
   * is not yet confined like the container; and the pid must sit in the container's cgroups),
   * running `argv` (the agent's command line). Resolves with the agent's host pid once confined.
   */
  spawnAgent(
    container: { readonly id: string; readonly pid: number },
    init: readonly string[],
    argv: readonly string[],
    timeoutMs = 30_000,
  ): Promise<number> {
    if (!this.alive) return Promise.reject(this.#failed ?? new BackendError('the container zygote is closed'));
    const id = this.#nextId++;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new BackendError(`the container zygote did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      const request = { op: 'spawn', id, container: container.id, pid: container.pid, init, argv };
      this.#child.stdin?.write(`${JSON.stringify(request)}\n`);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#fail(new BackendError('the container zygote is closed'));
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
      this.#child.kill('SIGKILL');
      await exited;
    }
    await unmount(this.#image);
  }

  /** Read the zygote's lines; resolves with its ready message. */
  #listen(timeoutMs: number): Promise<{ preloaded: string[]; preloadMs: number }> {
    return new Promise((resolve, reject) => {
      let ready = false;
      this.#notReady = (error) => {
        if (ready) return;
        clearTimeout(timer);
        reject(error);
      };
      const timer = setTimeout(() => {
        if (!ready) reject(new BackendError(`the container zygote was not ready within ${timeoutMs} ms: ${this.#stderr.trim()}`));
      }, timeoutMs);
      this.#child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
        this.#stderr = (this.#stderr + chunk).slice(-4000);
      });
      this.#child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        this.#buffer += chunk;
        let newline: number;
        while ((newline = this.#buffer.indexOf('\n')) >= 0) {
          const line = this.#buffer.slice(0, newline);
          this.#buffer = this.#buffer.slice(newline + 1);
          let message: {
            type?: string;
            id?: number;
            ok?: boolean;
            pid?: number;
            error?: string;
            preloaded?: string[];
            preloadMs?: number;
          };
          try {
            message = JSON.parse(line) as typeof message;
          } catch {
            continue;
          }
          if (message.type === 'ready' && !ready) {
            ready = true;
            clearTimeout(timer);
            resolve({ preloaded: message.preloaded ?? [], preloadMs: message.preloadMs ?? 0 });
            continue;
          }
          const pending = message.id === undefined ? undefined : this.#pending.get(message.id);
          if (pending === undefined) continue;
          this.#pending.delete(message.id!);
          clearTimeout(pending.timer);
          if (message.ok === true && typeof message.pid === 'number' && message.pid > 1) pending.resolve(message.pid);
          else
            pending.reject(new BackendError(`the container zygote could not start the agent: ${message.error ?? 'no answer'}`));
        }
      });
      this.#child.on('error', (error) => this.#fail(new BackendError(`the container zygote failed: ${error.message}`)));
      this.#child.on('exit', (code, signal) => {
        const why = new BackendError(
          `the container zygote exited (${signal ?? `code ${code}`}): ${this.#stderr.trim().slice(-1000)}`,
        );
        this.#fail(why);
        clearTimeout(timer);
        if (!ready) reject(why);
      });
    });
  }

  #fail(error: Error): void {
    this.#failed ??= error;
    this.#notReady?.(error);
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.reject(error);
      this.#pending.delete(id);
    }
  }
}

async function unmount(image: string): Promise<void> {
  await execFileAsync('podman', ['image', 'unmount', image]).catch(() => undefined);
}

/**
 * The backend's one zygote: started on first use where it can run, disabled (with the reason logged
 * once) where it cannot or after it failed, so sessions start the classic way from then on.
 */
export class ZygoteSupervisor {
  #zygote: Promise<Zygote | undefined> | undefined;
  #disabled: string | undefined;
  readonly #closing = new AbortController();

  constructor(private readonly options: ZygoteOptions & { readonly enabled: boolean }) {
    if (!options.enabled) this.#disabled = 'turned off (zygote: false)';
  }

  /** Why sessions start the classic way, if they do. */
  get disabledReason(): string | undefined {
    return this.#disabled;
  }

  /** The running zygote, or undefined when sessions must start the classic way. */
  async get(engine: { podman: boolean; local: boolean }, runtime: string | undefined): Promise<Zygote | undefined> {
    if (this.#disabled !== undefined) return undefined;
    if (this.#zygote === undefined) {
      const unsupported = zygoteUnsupported(engine, runtime);
      if (unsupported !== undefined) {
        this.disable(unsupported);
        return undefined;
      }
      this.#zygote = Zygote.start({ ...this.options, signal: this.#closing.signal }).catch((error: unknown) => {
        this.disable((error as Error).message);
        return undefined;
      });
    }
    const zygote = await this.#zygote;
    if (zygote !== undefined && !zygote.alive) {
      this.disable('the zygote exited');
      return undefined;
    }
    return zygote;
  }

  disable(reason: string): void {
    if (this.#disabled !== undefined) return;
    this.#disabled = reason;
    this.options.log(`container sessions start without the zygote: ${reason}`);
    const zygote = this.#zygote;
    this.#zygote = undefined;
    void zygote?.then((z) => z?.close());
  }

  async close(): Promise<void> {
    this.#disabled ??= 'closed';
    this.#closing.abort();
    const zygote = this.#zygote;
    this.#zygote = undefined;
    await (await zygote?.catch(() => undefined))?.close();
  }
}

/** The preload list the agent is told (`--preload`, `--no-preload`), if its arguments change it. */
export function preloadOf(agentArgs: readonly string[]): string[] | undefined {
  if (agentArgs.includes('--no-preload')) return [];
  const at = agentArgs.indexOf('--preload');
  return at >= 0 && at + 1 < agentArgs.length ? agentArgs[at + 1]!.split(',').filter((m) => m !== '') : undefined;
}
