/** Container engine services setup starts and leaves running (like a system service would). */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { dirname } from 'node:path';

/** GET /_ping on a unix socket; true when an engine answers. */
export function pingSocket(socketPath, timeoutMs = 2000) {
  return new Promise((resolve) => {
    if (!existsSync(socketPath)) return resolve(false);
    const req = request({ socketPath, path: '/_ping', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * Start an engine service detached from setup (it outlives it) unless `socketPath` already answers,
 * then wait until it does. Its output goes to `logFile` (or nowhere).
 */
export async function ensureService({ socketPath, command, args, logFile, timeoutMs, log, name }) {
  if (await pingSocket(socketPath)) return false;
  mkdirSync(dirname(socketPath), { recursive: true });
  // A socket file left by a service that died would make the new one fail to listen.
  rmSync(socketPath, { force: true });
  log(`starting ${name} on ${socketPath}${logFile === undefined ? '' : ` (log: ${logFile})`}`);
  let out = 'ignore';
  if (logFile !== undefined) {
    mkdirSync(dirname(logFile), { recursive: true });
    out = openSync(logFile, 'a');
  }
  // cwd '/': conmon writes an `oom` marker into its service's working directory when a container
  // is OOM-killed; it must not land in the checkout the setup ran from.
  const child = spawn(command, args, { cwd: '/', detached: true, stdio: ['ignore', out, out] });
  child.unref();
  if (typeof out === 'number') closeSync(out);
  let exited;
  child.once('exit', (code, signal) => {
    exited = code ?? signal;
  });
  for (const started = Date.now(); Date.now() - started < timeoutMs; ) {
    if (await pingSocket(socketPath, 500)) return true;
    if (exited !== undefined) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(
    `${name} did not answer on ${socketPath} within ${timeoutMs / 1000} s${exited === undefined ? '' : ` (it exited: ${exited})`}` +
      (logFile === undefined ? '' : `; see ${logFile}`),
  );
}
