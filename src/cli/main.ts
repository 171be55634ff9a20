#!/usr/bin/env node
/**
 * The `sandpool` command. `serve` runs the server; every other command talks to a server over its
 * HTTP API only (except `token` and `keys`, which manage credentials in a local data dir).
 */

import { SandpoolError } from '../errors.js';
import { CommandError, UsageError } from './args.js';

const HELP = `Usage: sandpool <command> [options]

Commands:
  serve        serve the Azure dynamic-sessions compatible API (sandpool serve --help)
  mcp          serve MCP tools over stdio for one pool (sandpool mcp --help)
  pool         create, list, get, update, delete session pools
  exec         run code in a session
  files        upload, download, list, delete files in a session
  sessions     list, show, stop sessions
  token        mint a development JWT
  keys         create and list API keys

Every command takes --help and --json. Client commands use --endpoint (or $SANDPOOL_ENDPOINT)
and --token (or $SANDPOOL_TOKEN / $SANDPOOL_ADMIN_KEY).`;

type Command = (argv: readonly string[]) => Promise<number>;

// Loaded on demand: a client command should not pay for loading the server, and the reverse.
const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => (await import('./commands/serve.js')).serve,
  mcp: async () => (await import('./commands/mcp.js')).mcp,
  pool: async () => (await import('./commands/pool-commands.js')).pool,
  exec: async () => (await import('./commands/session-commands.js')).exec,
  files: async () => (await import('./commands/session-commands.js')).files,
  sessions: async () => (await import('./commands/session-commands.js')).sessions,
  token: async () => (await import('./commands/credentials.js')).token,
  keys: async () => (await import('./commands/credentials.js')).keys,
};

/** Run the CLI; resolves with the exit code (-1: keep running, a server is up). */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${HELP}\n`);
    return command === undefined ? 2 : 0;
  }
  const load = COMMANDS[command];
  if (load === undefined) {
    process.stderr.write(`sandpool: unknown command "${command}"\n\n${HELP}\n`);
    return 2;
  }
  try {
    const run = await load();
    return await run(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`sandpool ${command}: ${error.message}\nRun "sandpool ${command} --help" for usage.\n`);
      return 2;
    }
    if (error instanceof CommandError) {
      process.stderr.write(`sandpool ${command}: ${error.message}\n`);
      return error.exitCode;
    }
    const message = SandpoolError.is(error) ? error.message : (error as Error).message;
    process.stderr.write(`sandpool ${command}: ${message}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`sandpool: ${(error as Error).message}\n`);
    process.exitCode = 1;
  },
);
