#!/usr/bin/env node
/**
 * The `sandpool` command. `serve` runs the server; every other command talks to a server over its
 * HTTP API only (except `token` and `keys`, which manage credentials in a local data dir).
 */

import { SandpoolError } from '../errors.js';
import { CommandError, UsageError } from './args.js';
import { keys, token } from './commands/credentials.js';
import { pool } from './commands/pool-commands.js';
import { serve } from './commands/serve.js';
import { exec, files, sessions } from './commands/session-commands.js';

const HELP = `Usage: sandpool <command> [options]

Commands:
  serve        serve the Azure dynamic-sessions compatible API (sandpool serve --help)
  pool         create, list, get, update, delete session pools
  exec         run code in a session
  files        upload, download, list, delete files in a session
  sessions     list, show, stop sessions
  token        mint a development JWT
  keys         create and list API keys

Every command takes --help and --json. Client commands use --endpoint (or $SANDPOOL_ENDPOINT)
and --token (or $SANDPOOL_TOKEN / $SANDPOOL_ADMIN_KEY).`;

const COMMANDS: Record<string, (argv: readonly string[]) => Promise<number>> = { serve, pool, exec, files, sessions, token, keys };

/** Run the CLI; resolves with the exit code (-1: keep running, a server is up). */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${HELP}\n`);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  if (run === undefined) {
    process.stderr.write(`sandpool: unknown command "${command}"\n\n${HELP}\n`);
    return 2;
  }
  try {
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
