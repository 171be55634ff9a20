/**
 * Per-session run directories and crash recovery. Each VM lives in `<runDir>/s-<hash>/` holding its
 * sockets (agent channel, QMP), its copy-on-write disk overlay and a `state.json` naming the owner:
 * the Node process (pid + start time, so a recycled pid is not mistaken for a live owner) and the
 * pool instance (`ownerId`). QEMU is started under `setpriv --pdeathsig SIGKILL` where available,
 * so it dies with its owner; whatever is left (files, or a QEMU whose owner died on a platform
 * without pdeathsig) is removed by `reapDeadOwners`, which touches only directories whose recorded
 * owner process is gone, and kills only a QEMU whose command line names that directory.
 */

import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processStartTime } from '../support/process-start-time.js';

export interface SessionState {
  readonly version: 1;
  readonly ownerId: string;
  readonly ownerPid: number;
  readonly ownerStartTime: string;
  readonly sessionId: string;
  readonly poolName: string;
  qemuPid?: number;
  readonly createdAt: string;
}

/**
 * A uid for one session's QEMU when the backend runs as root: unique per session directory, in a
 * range no distribution allocates (0x70000000 + 24 bits of the directory hash), so no file on the
 * host belongs to it and no two sessions share it.
 */
export const SESSION_UID_FIRST = 0x70000000;
export const SESSION_UID_LAST = SESSION_UID_FIRST + 0xffffff;

export function sessionUid(dirName: string): number {
  return SESSION_UID_FIRST + (Number.parseInt(dirName.slice(2, 8), 16) & 0xffffff);
}

export function defaultRunDir(): string {
  return process.env['SANDPOOL_VM_RUN_DIR'] ?? join(tmpdir(), 'sandpool-vm');
}

/** Short, fixed-length directory name: unix socket paths are limited to ~107 bytes. */
export function sessionDirName(ownerId: string, sessionId: string): string {
  return `s-${createHash('sha256').update(`${ownerId}\0${sessionId}`).digest('hex').slice(0, 20)}`;
}

export function ownerAlive(state: Pick<SessionState, 'ownerPid' | 'ownerStartTime'>): boolean {
  if (process.platform !== 'linux') {
    try {
      process.kill(state.ownerPid, 0);
      return true;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  return processStartTime(state.ownerPid) === state.ownerStartTime;
}

export function createSessionDir(
  runDir: string,
  state: Omit<SessionState, 'version' | 'ownerPid' | 'ownerStartTime' | 'createdAt'>,
): {
  dir: string;
  state: SessionState;
} {
  // 0711: an unprivileged QEMU must traverse it to reach its own session directory, never list it.
  mkdirSync(runDir, { recursive: true, mode: 0o711 });
  chmodSync(runDir, 0o711);
  const dir = join(runDir, sessionDirName(state.ownerId, state.sessionId));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { mode: 0o700 });
  const full: SessionState = {
    version: 1,
    ...state,
    ownerPid: process.pid,
    ownerStartTime: processStartTime(process.pid) ?? 'unknown',
    createdAt: new Date().toISOString(),
  };
  writeState(dir, full);
  return { dir, state: full };
}

export function writeState(dir: string, state: SessionState): void {
  writeFileSync(join(dir, 'state.json.tmp'), JSON.stringify(state));
  // rename is atomic: a reaper never reads half a file.
  renameSync(join(dir, 'state.json.tmp'), join(dir, 'state.json'));
}

function readState(dir: string): SessionState | undefined {
  try {
    const parsed = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as Partial<SessionState>;
    if (parsed.version !== 1 || typeof parsed.ownerPid !== 'number' || typeof parsed.ownerStartTime !== 'string')
      return undefined;
    return parsed as SessionState;
  } catch {
    return undefined;
  }
}

/** Kill `pid` only if it is a QEMU started for `dir` (its command line names the directory). */
export function killQemuOf(pid: number | undefined, dir: string): boolean {
  if (pid === undefined || pid <= 1) return false;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes(dir)) return false;
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

export interface ReapReport {
  readonly removed: string[];
  readonly killedQemu: number[];
}

/**
 * Remove session directories whose owner process is dead (and their QEMU, if still running).
 * A directory without a readable state file is removed only when it is older than `graceMs`
 * (a live owner writes the state file right after creating the directory).
 */
export function reapDeadOwners(runDir: string, graceMs = 60_000): ReapReport {
  const removed: string[] = [];
  const killedQemu: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync(runDir).filter((n) => /^s-[0-9a-f]{20}$/.test(n));
  } catch {
    return { removed, killedQemu };
  }
  for (const name of entries) {
    const dir = join(runDir, name);
    const state = readState(dir);
    if (state === undefined) {
      try {
        if (Date.now() - statSync(dir).mtimeMs < graceMs) continue;
      } catch {
        continue;
      }
    } else if (ownerAlive(state)) {
      continue;
    }
    if (state?.qemuPid !== undefined && killQemuOf(state.qemuPid, dir)) killedQemu.push(state.qemuPid);
    rmSync(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return { removed, killedQemu };
}

export { processStartTime };

/** Uids of the session directories currently in `runDir` (their owners may still start or run them). */
export function liveSessionUids(runDir: string): Set<number> {
  try {
    return new Set(
      readdirSync(runDir)
        .filter((n) => /^s-[0-9a-f]{20}$/.test(n))
        .map(sessionUid),
    );
  } catch {
    return new Set();
  }
}
