/**
 * Child processes of setup steps. Each runs in its own process group, so that an interrupted setup
 * (Ctrl-C, SIGTERM) stops the whole tree a step started (debootstrap's dpkg, mksquashfs's threads)
 * instead of leaving it writing into a folder the next run will clean up.
 */
import { spawn } from 'node:child_process';

/** Process groups of the children still running. */
const running = new Set();

/** Kill every child process group setup started (on SIGINT/SIGTERM/SIGHUP). */
export function killChildren(signal = 'SIGTERM') {
  for (const pgid of running) {
    try {
      process.kill(-pgid, signal);
    } catch {
      // Already gone.
    }
  }
}

/**
 * Run a command; resolves with its stdout. On failure the error message ends with the tail of its
 * output, so a failed step says why.
 * @param {string} command
 * @param {string[]} args
 * @param {{ log?: (m: string) => void, env?: Record<string, string>, cwd?: string, input?: string | Buffer, quiet?: boolean }} [options]
 */
export function run(command, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? '/',
      detached: true,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
    });
    if (child.pid !== undefined) running.add(child.pid);
    let out = '';
    let tail = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      tail = (tail + chunk).slice(-4000);
    });
    child.stderr.on('data', (chunk) => {
      tail = (tail + chunk).slice(-4000);
    });
    child.on('error', (error) => {
      running.delete(child.pid);
      reject(new Error(`${command} could not start: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      running.delete(child.pid);
      if (code === 0) return resolve(out.trim());
      const lines = tail.trim().split('\n').slice(-12).join('\n');
      reject(
        new Error(`${command} ${args.slice(0, 6).join(' ')}${args.length > 6 ? ' …' : ''} failed (${code ?? signal})\n${lines}`),
      );
    });
    if (options.input !== undefined) child.stdin.end(options.input);
  });
}
