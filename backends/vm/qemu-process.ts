/**
 * One QEMU child process: spawned so that it dies with its owner (Linux parent-death signal via
 * util-linux `setpriv`), its serial console kept as a bounded tail for error messages, its exit
 * observable as a promise.
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

const CONSOLE_TAIL_BYTES = 16 * 1024;

export interface QemuExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

let setprivPath: string | null | undefined;

/** `setpriv` when it supports --pdeathsig (util-linux ≥ 2.33), else null. */
function findSetpriv(): string | null {
  if (setprivPath !== undefined) return setprivPath;
  setprivPath = null;
  if (process.platform === 'linux') {
    for (const candidate of ['/usr/bin/setpriv', '/bin/setpriv']) {
      if (existsSync(candidate) && spawnSync(candidate, ['--help'], { encoding: 'utf8' }).stdout?.includes('--pdeathsig')) {
        setprivPath = candidate;
        break;
      }
    }
  }
  return setprivPath;
}

export class QemuProcess {
  readonly #child: ChildProcess;
  readonly exited: Promise<QemuExit>;
  #exit: QemuExit | undefined;
  #console = '';
  #stderr = '';

  constructor(
    qemu: string,
    args: readonly string[],
    options: {
      /** Descriptors QEMU inherits as 3, 4, … (snapshot state, snapshot memory). */
      inheritFds?: readonly number[] | undefined;
      runAs?: { uid: number; gid: number } | undefined;
    } = {},
  ) {
    const setpriv = findSetpriv();
    // setpriv applies the parent-death signal after switching user, so both hold.
    const drop =
      options.runAs === undefined ? [] : [`--reuid=${options.runAs.uid}`, `--regid=${options.runAs.gid}`, '--clear-groups'];
    const [command, argv] =
      setpriv === null ? [qemu, [...args]] : [setpriv, [...drop, '--pdeathsig', 'KILL', '--', qemu, ...args]];
    if (options.runAs !== undefined && setpriv === null) throw new Error('running QEMU as another user needs util-linux setpriv');
    const stdio: ('pipe' | 'ignore' | number)[] = ['ignore', 'pipe', 'pipe', ...(options.inheritFds ?? [])];
    this.#child = spawn(command, argv, { stdio, detached: false });
    this.#child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.#console = (this.#console + chunk).slice(-CONSOLE_TAIL_BYTES);
    });
    this.#child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-CONSOLE_TAIL_BYTES);
    });
    this.exited = new Promise<QemuExit>((resolve) => {
      this.#child.on('error', (error) => {
        this.#stderr += `\n${error.message}`;
        this.#exit ??= { code: null, signal: null };
        resolve(this.#exit);
      });
      this.#child.on('exit', (code, signal) => {
        this.#exit ??= { code, signal };
        resolve(this.#exit);
      });
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get hasExited(): boolean {
    return this.#exit !== undefined;
  }

  /** The last lines the guest wrote to its serial console and QEMU to stderr, for error messages. */
  diagnostics(maxChars = 2000): string {
    const lines = `${this.#stderr.trim()}\n${this.#console.trim()}`
      .split('\n')
      .filter((l) => l.trim().length > 0 && !l.includes("host doesn't support requested feature"));
    return lines.join('\n').slice(-maxChars);
  }

  /** SIGKILL (QEMU holds no state worth a graceful stop) and wait for the exit. */
  async kill(): Promise<QemuExit> {
    if (this.#exit === undefined) this.#child.kill('SIGKILL');
    return await this.exited;
  }
}
