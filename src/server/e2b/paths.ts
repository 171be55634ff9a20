/**
 * E2B's working directory, `/home/user`, is the session's files area: the directory sandpool
 * serves as `/mnt/data` (the Python and JavaScript kernels and shell commands start there, and the
 * container image links `/home/user` to it). So `files.write('a.txt')`,
 * `files.write('/home/user/a.txt')` and `open('a.txt')` in `runCode` all name the same file.
 * Paths the files API reports start with `/home/user`. The files API reaches nothing outside the
 * files area; commands may `cd` anywhere the sandbox lets them.
 */

import { posix } from 'node:path';

import { badArgument } from './errors.js';

/** E2B's home and default working directory. */
export const E2B_HOME = '/home/user';
/** Where the files area lives inside every container and VM session. */
export const SANDBOX_DATA_DIR = '/mnt/data';

const MAX_PATH_BYTES = 4096;

function checked(path: unknown): string {
  if (typeof path !== 'string') throw badArgument('path must be a string');
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) throw badArgument(`path is longer than ${MAX_PATH_BYTES} bytes`);
  if (path.includes('\0')) throw badArgument('path contains a NUL byte');
  return path;
}

/** Strip the home prefix (or `/mnt/data`, or `~`) from a normalised absolute or relative path. */
function relativeToHome(path: string): string | undefined {
  const expanded = path === '~' ? E2B_HOME : path.startsWith('~/') ? `${E2B_HOME}${path.slice(1)}` : path;
  if (!expanded.startsWith('/')) {
    const rel = posix.normalize(expanded === '' ? '.' : expanded);
    if (rel === '..' || rel.startsWith('../')) return undefined;
    return rel === '.' ? '' : rel.replace(/\/+$/, '');
  }
  const abs = posix.normalize(expanded).replace(/\/+$/, '') || '/';
  for (const root of [E2B_HOME, SANDBOX_DATA_DIR]) {
    if (abs === root) return '';
    if (abs.startsWith(`${root}/`)) return abs.slice(root.length + 1);
  }
  return undefined;
}

/**
 * An E2B path (absolute, relative to `/home/user`, or `~/…`) as a path in the files area (relative,
 * `""` for the area itself). Anything outside is refused with InvalidArgumentError's 400.
 */
export function toDataPath(e2bPath: unknown): string {
  const path = checked(e2bPath);
  const rel = relativeToHome(path);
  if (rel === undefined) {
    throw badArgument(
      `path "${path.slice(0, 200)}" is outside ${E2B_HOME}: sandpool's E2B files API serves the session's files area only`,
    );
  }
  return rel;
}

/** A files-area path as E2B reports it. */
export function toE2bPath(dataPath: string): string {
  return dataPath === '' ? E2B_HOME : `${E2B_HOME}/${dataPath}`;
}

/**
 * A working directory for a command, as the sandbox sees it: the home maps into the files area,
 * other absolute paths are the sandbox's own (a command may run in `/tmp`).
 */
export function toSandboxDir(e2bPath: unknown): string {
  const path = checked(e2bPath);
  const rel = relativeToHome(path);
  if (rel !== undefined) return rel === '' ? SANDBOX_DATA_DIR : `${SANDBOX_DATA_DIR}/${rel}`;
  if (!path.startsWith('/')) throw badArgument(`cwd "${path.slice(0, 200)}" leaves ${E2B_HOME}`);
  return posix.normalize(path);
}
