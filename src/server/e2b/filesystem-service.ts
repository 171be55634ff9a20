/**
 * envd's `filesystem.Filesystem` Connect service over the session's files area: Stat, ListDir,
 * MakeDir, Move and Remove. Directory creation and moves have no file operation of their own in
 * the library, so they run `mkdir -p` / `mv` in the session (as its own user, inside the sandbox).
 * Watching directories is not offered.
 */

import type { FileInfo } from '../../backend.js';
import { ErrorCode, SandpoolError } from '../../errors.js';
import { E2bError, badArgument, notFound, unsupported } from './errors.js';
import { E2B_HOME, SANDBOX_DATA_DIR, toDataPath, toE2bPath } from './paths.js';
import type { LiveSandbox } from './sandboxes.js';

/** proto3 JSON of envd's `EntryInfo`. Mode, owner and group are nominal: the agent does not report them. */
function entryInfo(info: FileInfo) {
  const dir = info.type === 'directory';
  return {
    name: info.name,
    type: dir ? 'FILE_TYPE_DIRECTORY' : 'FILE_TYPE_FILE',
    path: toE2bPath(info.path),
    size: String(info.sizeInBytes),
    mode: dir ? 0o755 : 0o644,
    permissions: dir ? 'drwxr-xr-x' : '-rw-r--r--',
    owner: 'user',
    group: 'user',
    modifiedTime: info.lastModifiedAt,
  };
}

function homeEntry() {
  return entryInfo({ name: 'user', path: '', type: 'directory', sizeInBytes: 4096, lastModifiedAt: new Date().toISOString() });
}

function field(message: Record<string, unknown>, name: string): string {
  const value = message[name];
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw badArgument(`${name} must be a string`);
  return value;
}

async function stat(live: LiveSandbox, dataPath: string): Promise<FileInfo | undefined> {
  if (dataPath === '') return undefined;
  try {
    return await live.session.fileInfo(dataPath);
  } catch (error) {
    if (SandpoolError.is(error) && error.code === ErrorCode.FILE_NOT_FOUND) return undefined;
    throw error;
  }
}

/** Run a program in the sandbox's files area; a non-zero exit is a failure named by its stderr. */
async function run(live: LiveSandbox, argv: string[], what: string): Promise<void> {
  const result = await live.session.execute({ language: 'shell', code: '', argv, timeoutInSeconds: 60 });
  if (result.exitCode !== 0) {
    const reason =
      result.stderr
        .trim()
        .split('\n')
        .pop()
        ?.replace(/^[^:]+: /, '') ?? 'failed';
    throw new E2bError(400, 'invalid_argument', `${what} failed: ${reason.slice(0, 300)}`);
  }
}

const absolute = (dataPath: string): string => (dataPath === '' ? SANDBOX_DATA_DIR : `${SANDBOX_DATA_DIR}/${dataPath}`);

function requireShell(live: LiveSandbox, what: string): void {
  if (!live.pool.backend.capabilities.languages.includes('shell'))
    throw unsupported(`${what} on the ${live.pool.backend.name} backend`);
}

type Method = (live: LiveSandbox, message: Record<string, unknown>) => Promise<object>;

const METHODS: Readonly<Record<string, Method>> = {
  async Stat(live, message) {
    const path = toDataPath(field(message, 'path'));
    if (path === '') return { entry: homeEntry() };
    return { entry: entryInfo(await live.session.fileInfo(path)) };
  },

  async ListDir(live, message) {
    const path = toDataPath(field(message, 'path'));
    const rawDepth = message['depth'] ?? 1;
    const depth = typeof rawDepth === 'string' ? Number(rawDepth) : rawDepth;
    if (typeof depth !== 'number' || !Number.isInteger(depth) || depth < 0)
      throw badArgument('depth must be a non-negative integer');
    const wanted = Math.max(1, depth);
    const files = await live.session.listFiles({ path, recursive: wanted > 1 });
    const base = path === '' ? 0 : path.split('/').length;
    const entries = files.filter((f) => f.path.split('/').length - base <= wanted).map(entryInfo);
    return { entries };
  },

  async MakeDir(live, message) {
    const path = toDataPath(field(message, 'path'));
    const existing = path === '' ? homeEntry() : await stat(live, path).then((f) => f && entryInfo(f));
    if (existing !== undefined) {
      if (existing.type === 'FILE_TYPE_DIRECTORY')
        throw new E2bError(409, 'already_exists', `directory ${toE2bPath(path)} already exists`);
      throw badArgument(`path ${toE2bPath(path)} already exists and is not a directory`);
    }
    requireShell(live, 'creating directories');
    await run(live, ['mkdir', '-p', '--', absolute(path)], 'mkdir');
    return { entry: entryInfo(await live.session.fileInfo(path)) };
  },

  async Move(live, message) {
    const source = toDataPath(field(message, 'source'));
    const destination = toDataPath(field(message, 'destination'));
    if (source === '' || destination === '') throw badArgument(`${E2B_HOME} itself cannot be moved or replaced`);
    if ((await stat(live, source)) === undefined) throw notFound(`path ${toE2bPath(source)} does not exist`);
    requireShell(live, 'moving files');
    await run(live, ['mv', '-T', '--', absolute(source), absolute(destination)], 'move');
    return { entry: entryInfo(await live.session.fileInfo(destination)) };
  },

  async Remove(live, message) {
    const path = toDataPath(field(message, 'path'));
    if (path === '') throw badArgument(`${E2B_HOME} itself cannot be removed`);
    await live.session.deleteFile(path);
    return {};
  },
};

const WATCHERS = new Set(['WatchDir', 'CreateWatcher', 'GetWatcherEvents', 'RemoveWatcher']);

/** The unary method `name`, or a Connect error for what the service does not offer. */
export function filesystemMethod(name: string): Method {
  if (Object.hasOwn(METHODS, name)) return METHODS[name]!;
  if (WATCHERS.has(name)) return () => Promise.reject(unsupported('watching directories'));
  return () => Promise.reject(new E2bError(404, 'unimplemented', `filesystem.Filesystem/${name.slice(0, 64)} does not exist`));
}

/** Whether the sandbox's backend has a files area at all. */
export function requireFiles(live: LiveSandbox): void {
  if (!live.pool.backend.capabilities.files) throw unsupported(`files on the ${live.pool.backend.name} backend`);
}
