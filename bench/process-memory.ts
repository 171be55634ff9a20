/**
 * Memory of the processes behind out-of-process sessions (conmon + container processes, qemu),
 * as PSS from /proc/PID/smaps_rollup: shared pages (the image's python3, the kernel image) are
 * split between the processes that map them, so PSS sums to what the sessions really cost.
 */

import { readdirSync, readFileSync } from 'node:fs';

export interface ProcessEntry {
  readonly pid: number;
  readonly ppid: number;
  readonly cmdline: string;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined; // the process exited, or we may not read it
  }
}

/** Every process on the host (Linux); empty elsewhere. */
export function listProcesses(): ProcessEntry[] {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const entries: ProcessEntry[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readText(`/proc/${name}/stat`);
    if (stat === undefined) continue;
    // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const cmdline = (readText(`/proc/${name}/cmdline`) ?? '').replaceAll('\0', ' ').trim();
    entries.push({ pid: Number(name), ppid, cmdline });
  }
  return entries;
}

/** Proportional set size of one process in bytes, or undefined when it cannot be read. */
export function pssBytes(pid: number): number | undefined {
  const rollup = readText(`/proc/${pid}/smaps_rollup`);
  const match = rollup === undefined ? null : /^Pss:\s+(\d+) kB/m.exec(rollup);
  return match === null ? undefined : Number(match[1]) * 1024;
}

/** Unique set size in bytes: pages mapped by this process alone (clean or dirty), or undefined. */
export function ussBytes(pid: number): number | undefined {
  const rollup = readText(`/proc/${pid}/smaps_rollup`);
  if (rollup === undefined) return undefined;
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0);
  return (field('Private_Clean') + field('Private_Dirty')) * 1024;
}

/** MemAvailable of the host in bytes (Linux), or undefined. */
export function memAvailableBytes(): number | undefined {
  const match = /^MemAvailable:\s+(\d+) kB/m.exec(readText('/proc/meminfo') ?? '');
  return match === null ? undefined : Number(match[1]) * 1024;
}

/** KSM's counters when the kernel has it: whether it runs and how many pages it shares. */
export function ksmState(): { run: number; pagesSharing: number } | undefined {
  const run = readText('/sys/kernel/mm/ksm/run');
  const sharing = readText('/sys/kernel/mm/ksm/pages_sharing');
  if (run === undefined || sharing === undefined) return undefined;
  return { run: Number(run.trim()), pagesSharing: Number(sharing.trim()) };
}

/** `roots` and all their descendants among `processes`. */
function withDescendants(processes: readonly ProcessEntry[], roots: ReadonlySet<number>): Set<number> {
  const children = new Map<number, number[]>();
  for (const p of processes) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  const result = new Set<number>();
  const stack = [...roots];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    if (result.has(pid)) continue;
    result.add(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return result;
}

/**
 * The processes that belong to sessions: those started since `before` that either descend from
 * this process (qemu, spawned by the backend) or carry a session's resource id on their command
 * line (conmon is started by the Podman service with `-c <container id>`), with their descendants.
 * Other engineers' containers and VMs on a shared host are not counted.
 */
export function sessionProcesses(before: ReadonlySet<number>, resourceIds: readonly string[]): ProcessEntry[] {
  const processes = listProcesses().filter((p) => !before.has(p.pid));
  const ids = resourceIds.filter((id) => id.length >= 12);
  const ours = withDescendants(listProcesses(), new Set([process.pid]));
  ours.delete(process.pid);
  const roots = new Set<number>();
  for (const p of processes) {
    if (ours.has(p.pid) || ids.some((id) => p.cmdline.includes(id))) roots.add(p.pid);
  }
  const pids = withDescendants(processes, roots);
  return processes.filter((p) => pids.has(p.pid));
}

export function pidSet(): Set<number> {
  return new Set(listProcesses().map((p) => p.pid));
}
