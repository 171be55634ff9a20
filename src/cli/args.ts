/** Argument parsing on node:util's parseArgs, with `--help` on every command and clear usage errors. */

import { parseArgs, type ParseArgsConfig } from 'node:util';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** A usage error: printed with the command's help hint, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A command failed (HTTP error, file not found): exit code 1. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export interface Parsed {
  readonly values: Record<string, string | boolean | string[] | undefined>;
  readonly positionals: string[];
}

export const COMMON_OPTIONS: OptionSpec = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
};

export const CLIENT_OPTIONS: OptionSpec = {
  ...COMMON_OPTIONS,
  endpoint: { type: 'string' },
  token: { type: 'string' },
};

export function parse(argv: readonly string[], options: OptionSpec): Parsed {
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
    return { values: values as Parsed['values'], positionals };
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

export function stringOption(parsed: Parsed, name: string): string | undefined {
  const v = parsed.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function requiredOption(parsed: Parsed, name: string): string {
  const v = stringOption(parsed, name);
  if (v === undefined || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

export function numberOption(parsed: Parsed, name: string): number | undefined {
  const v = stringOption(parsed, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${v}"`);
  return n;
}
