/** The machine a run was made on: every figure is meaningless without it. */

import { readFileSync } from 'node:fs';
import os from 'node:os';

import type { MachineInfo } from './types.js';

/** `os.cpus()[0].model` can be vague in VMs ("AMD EPYC"); /proc/cpuinfo sometimes knows more. */
function cpuModel(): string {
  const fromNode = os.cpus()[0]?.model.trim() ?? 'unknown';
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'));
    const fromProc = line?.split(':')[1]?.trim();
    if (fromProc !== undefined && fromProc.length > fromNode.length) return fromProc;
  } catch {
    // Not Linux: Node's answer is all there is.
  }
  return fromNode;
}

function osName(): string {
  try {
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'));
    if (pretty?.[1] !== undefined) return pretty[1];
  } catch {
    // fall through
  }
  return `${os.type()} ${os.release()}`;
}

export function machineInfo(): MachineInfo {
  return {
    cpuModel: cpuModel(),
    cores: os.availableParallelism(),
    memoryBytes: os.totalmem(),
    kernel: os.release(),
    os: osName(),
    host: os.hostname(),
    node: process.version,
    v8: process.versions.v8,
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
    date: new Date().toISOString(),
  };
}
