/**
 * Where the agent's sources live and how to start it, so the container image, the VM image and
 * the tests all launch it the same way (flags: agent/PROTOCOL.md).
 */

import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute path of the repository's `agent/` directory (copy it into images as a whole). */
function agentDirectory(): string {
  // backends/support/agent-client/ → repo root; from dist/ the layout is dist/backends/… so walk up to the package root.
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(path.join(dir, 'agent', 'sandpool_agent', '__main__.py'))) return path.join(dir, 'agent');
    dir = path.dirname(dir);
  }
  throw new Error('sandpool agent sources not found next to the package');
}

export interface AgentCommandOptions {
  /** `stdio`, a unix socket path to listen on, or a character device to open. */
  readonly transport:
    | { readonly kind: 'stdio' }
    | { readonly kind: 'unix'; readonly path: string }
    | { readonly kind: 'device'; readonly path: string };
  /** The agent directory as seen by the interpreter (inside the image). @default agentDirectory() */
  readonly agentDir?: string | undefined;
  /** @default 'python3' */
  readonly python?: string | undefined;
  /** @default '/mnt/data' */
  readonly dataDir?: string | undefined;
  /** Modules to import before `ready`; undefined keeps the agent's default list. */
  readonly preload?: readonly string[] | undefined;
  readonly interruptGraceMs?: number | undefined;
}

/** argv (program first) that starts the agent. */
export function agentCommand(options: AgentCommandOptions): string[] {
  const dir = options.agentDir ?? agentDirectory();
  const argv = [options.python ?? 'python3', '-u', path.posix.join(dir, 'sandpool_agent')];
  const t = options.transport;
  if (t.kind === 'stdio') argv.push('--stdio');
  else if (t.kind === 'unix') argv.push('--listen-unix', t.path);
  else argv.push('--device', t.path);
  argv.push('--data-dir', options.dataDir ?? '/mnt/data');
  if (options.preload !== undefined) {
    if (options.preload.length === 0) argv.push('--no-preload');
    else argv.push('--preload', options.preload.join(','));
  }
  if (options.interruptGraceMs !== undefined) argv.push('--interrupt-grace-ms', String(options.interruptGraceMs));
  return argv;
}
