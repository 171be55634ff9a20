/**
 * Crash-safe file system helpers for setup steps: locks whose dead holder is detected and
 * replaced, removal of a half-built tree that a killed step may have left with processes still in
 * it and file systems still mounted inside it (debootstrap mounts /proc and /sys in its target),
 * and clean-up of temporary files whose writer died.
 */
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The start time of a process (clock ticks since boot), or undefined when it does not exist. */
function startTime(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22; the command name (field 2) may contain spaces, so count from the closing paren.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function bootId() {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** What a lock file records: this process, told apart from a later process that reuses its pid. */
function holderRecord() {
  return JSON.stringify({ pid: process.pid, start: startTime(process.pid), boot: bootId() });
}

/** True while the process that wrote this lock record is still the same running process. */
export function holderAlive(text) {
  let record;
  try {
    record = JSON.parse(text);
  } catch {
    // An old plain-pid lock, or one cut short while being written: a pid alone cannot be trusted.
    const pid = Number(text.trim());
    if (!Number.isInteger(pid) || pid <= 0) return false;
    return startTime(pid) !== undefined;
  }
  if (record.boot !== bootId()) return false;
  const now = startTime(record.pid);
  return now !== undefined && now === record.start;
}

/**
 * Run `fn` holding an exclusive lock file. A lock whose holder died (crash, SIGKILL, reboot) is
 * taken over; a live holder is waited for.
 */
export async function withLock(path, log, fn) {
  for (let waited = 0; ; waited++) {
    try {
      const fd = openSync(path, 'wx');
      writeFileSync(fd, holderRecord());
      closeSync(fd);
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      let text = '';
      try {
        text = readFileSync(path, 'utf8');
      } catch {
        continue; // Released between our open and read.
      }
      // A lock file just created may not have its record yet: give its writer a moment.
      if (text === '' && waited < 3) {
        await sleep(200);
        continue;
      }
      if (!holderAlive(text)) {
        log(`taking over ${basename(path)}: its holder is gone`);
        rmSync(path, { force: true });
        continue;
      }
      if (waited % 30 === 0) log(`waiting for another setup (lock ${path}, ${text}) to finish`);
      await sleep(2000);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(path, { force: true });
  }
}

/** Mount points at or below `dir`, deepest first (from /proc/self/mountinfo). */
export function mountsUnder(dir) {
  const root = resolve(dir);
  let text = '';
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const unoctal = (s) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(Number.parseInt(o, 8)));
  return text
    .split('\n')
    .map((line) => unoctal(line.split(' ')[4] ?? ''))
    .filter((point) => point === root || point.startsWith(`${root}/`))
    .sort((a, b) => b.length - a.length);
}

/** Processes whose root, working directory or command line is inside `dir`. */
export function processesUsing(dir) {
  const root = resolve(dir);
  const inside = (p) => p === root || p.startsWith(`${root}/`);
  const found = [];
  for (const name of existsSync('/proc') ? readdirSync('/proc') : []) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const links = ['root', 'cwd'].map((l) => {
        try {
          return readlinkSync(`/proc/${name}/${l}`);
        } catch {
          return '';
        }
      });
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (links.some(inside) || cmdline.some((arg) => inside(arg))) found.push(Number(name));
    } catch {
      // Exited meanwhile.
    }
  }
  return found;
}

/**
 * Remove a tree a killed step may have left behind: stop processes still working in it, unmount
 * what is mounted inside it (never following a mount into the host's /proc or /sys), then delete.
 */
export async function removeTree(dir, log = () => {}) {
  if (!existsSync(dir)) return;
  const pids = processesUsing(dir);
  if (pids.length > 0) {
    log(`stopping ${pids.length} process(es) left working in ${dir} by an interrupted run`);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone.
      }
    }
    for (let i = 0; i < 50 && processesUsing(dir).length > 0; i++) await sleep(100);
  }
  for (const point of mountsUnder(dir)) {
    log(`unmounting ${point} (left mounted by an interrupted run)`);
    const result = spawnSync('umount', ['--lazy', point], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`cannot unmount ${point}: ${(result.stderr ?? '').trim()}`);
  }
  if (mountsUnder(dir).length > 0) throw new Error(`file systems are still mounted under ${dir}; not removing it`);
  rmSync(dir, { recursive: true, force: true });
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/**
 * Remove `<name>.tmp-<pid>…` files and folders in `dir` whose writing process is gone: what a
 * step killed half-way leaves (a 500 MB partial squashfs, a half-copied image folder).
 */
export async function removeStaleTemps(dir, log = () => {}) {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    const match = /\.tmp-(\d+)(?:-\d+)?$/.exec(name);
    if (match === null) continue;
    const pid = Number(match[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    log(`removing ${name}, left by an interrupted run`);
    await removeTree(join(dir, name), log);
  }
}

/** Write a file atomically (temp file + rename), so a reader never sees half of it. */
export function writeFileAtomic(path, content, options = {}) {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  writeFileSync(tmp, content, options);
  renameSync(tmp, path);
}
