/**
 * `sandpool mcp --pool NAME`: an MCP server over stdio, for an MCP client's configuration
 * (`{"command": "sandpool", "args": ["mcp", "--pool", "python"]}`). The pool runs in this process:
 * a built-in pool (python, javascript, shell) on the backend `serve` would choose or the one given
 * with --backend, or a pool defined on a server (`PUT /pools/NAME`) and persisted in --data-dir.
 * stdout carries MCP only; logs go to stderr.
 */

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';

import { parseEnvironment } from '../../environment.js';
import { SandpoolMcpSession } from '../../mcp/mcp-session.js';
import { localSessions } from '../../mcp/tools.js';
import type { ContainerType } from '../../options.js';
import { jsonLinesLogger, type LogLevel, type Logger } from '../../server/logging.js';
import type { PoolDefinition } from '../../server/pool-registry.js';
import { SessionPool } from '../../session-pool.js';
import { COMMON_OPTIONS, UsageError, numberOption, parse, requiredOption, stringOption, type OptionSpec } from '../args.js';
import { BACKEND_NAMES, createBackend } from '../backend-loader.js';
import { builtinPools } from '../builtin-pools.js';
import { defaultDataDir } from '../state-dir.js';

export const MCP_HELP = `Usage: sandpool mcp --pool NAME [options]

Serve MCP (Model Context Protocol) over stdio: tools run_code, run_shell, write_file, read_file,
list_files and reset_session on sandboxes of one pool. Each MCP client connection gets its own
sandbox, released when the connection closes. In an MCP client's configuration:
  {"command": "sandpool", "args": ["mcp", "--pool", "python"]}

Options:
  --pool NAME          python, javascript or shell (built in), or a pool defined in --data-dir
  --backend NAME       backend of a built-in pool: ${BACKEND_NAMES.join(', ')}
                       (default: the one "sandpool serve" would choose)
  --ready N            ready sessions to keep warm (default 1)
  --env NAME[=VALUE]   bind an environment variable to the sandbox (repeatable); without
                       =VALUE it is copied from this process's environment
  --data-dir DIR       where defined pools are stored (default ${defaultDataDir()})
  --log-level LEVEL    debug, info, warn or error, on stderr (default warn)
  -h, --help           show this help

Over HTTP, "sandpool serve" offers the same tools at /mcp (Streamable HTTP).`;

const OPTIONS: OptionSpec = {
  ...COMMON_OPTIONS,
  pool: { type: 'string' },
  backend: { type: 'string' },
  ready: { type: 'string' },
  env: { type: 'string', multiple: true },
  'data-dir': { type: 'string' },
  'log-level': { type: 'string' },
};

const BUILTIN: Record<string, ContainerType> = { python: 'PythonLTS', javascript: 'NodeLTS', shell: 'Shell' };
const POOL_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

/** `--env` values as an environment; a name alone is copied from this process. */
export function environmentOption(values: readonly string[] | undefined): Record<string, string> | undefined {
  if (values === undefined || values.length === 0) return undefined;
  const env: Record<string, string> = {};
  for (const item of values) {
    const at = item.indexOf('=');
    const name = at < 0 ? item : item.slice(0, at);
    const value = at < 0 ? process.env[name] : item.slice(at + 1);
    if (value === undefined) throw new UsageError(`--env ${name}: not set in this environment`);
    env[name] = value;
  }
  try {
    return { ...parseEnvironment(env, '--env') };
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

async function buildPool(name: string, backendName: string | undefined, ready: number, dataDir: string, log: Logger) {
  const builtin = BUILTIN[name];
  if (builtin !== undefined && backendName !== undefined) {
    if (!(BACKEND_NAMES as readonly string[]).includes(backendName)) throw new UsageError(`unknown backend "${backendName}"`);
    const backend = await createBackend(backendName);
    return new SessionPool({ name, backend, containerType: builtin, readySessionInstances: ready, maxConcurrentSessions: 20 });
  }
  if (builtin !== undefined) {
    const [pool] = await builtinPools(log, new Set([name]));
    if (pool === undefined) throw new UsageError(`no backend can run the "${name}" pool here (see the log)`);
    pool.update({ readySessionInstances: ready });
    return pool;
  }
  if (!POOL_NAME.test(name)) throw new UsageError(`--pool must be python, javascript, shell or a defined pool's name`);
  let definition: PoolDefinition;
  try {
    definition = JSON.parse(await readFile(join(dataDir, 'pools', `${name}.json`), 'utf8')) as PoolDefinition;
  } catch {
    throw new UsageError(`no pool "${name}": not built in, and not defined in ${dataDir}`);
  }
  const backend = await createBackend(backendName ?? definition.backend);
  return SessionPool.fromSessionPoolProperties(definition.properties, { name, backend, ownsBackend: true });
}

export async function mcp(argv: readonly string[]): Promise<number> {
  const parsed = parse(argv, OPTIONS);
  if (parsed.values['help'] === true) {
    process.stdout.write(`${MCP_HELP}\n`);
    return 0;
  }
  if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
  const name = requiredOption(parsed, 'pool');
  const level = (stringOption(parsed, 'log-level') ?? 'warn') as LogLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new UsageError('--log-level must be debug, info, warn or error');
  const ready = numberOption(parsed, 'ready') ?? 1;
  if (!Number.isInteger(ready) || ready < 0 || ready > 100) throw new UsageError('--ready must be an integer from 0 to 100');
  const env = environmentOption(parsed.values['env'] as string[] | undefined);
  const log = jsonLinesLogger(process.stderr, level);

  const pool = await buildPool(
    name,
    stringOption(parsed, 'backend'),
    ready,
    stringOption(parsed, 'data-dir') ?? defaultDataDir(),
    log,
  );
  // Warm up in the background: the client's initialize is answered at once, the first tool call
  // waits for a session if none is ready yet.
  pool.start().catch((error: unknown) => log({ level: 'error', msg: 'pool failed to start', error: (error as Error).message }));
  const session = new SandpoolMcpSession(localSessions(pool), { env });
  const transport = new StdioServerTransport();

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await session.close();
      await pool.close().catch(() => undefined);
    })());
  transport.onclose = () => {
    void stop();
  };
  // The client closing our stdin ends the session (the usual way MCP clients stop a server).
  process.stdin.once('end', () => void stop().then(() => process.exit(0)));
  process.once('SIGTERM', () => void stop().then(() => process.exit(0)));
  process.once('SIGINT', () => void stop().then(() => process.exit(0)));
  await session.server.connect(transport);
  log({ level: 'info', msg: 'mcp serving on stdio', pool: pool.name, backend: pool.backend.name });
  return -1; // keep running until stdin closes
}
