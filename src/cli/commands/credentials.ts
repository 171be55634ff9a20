/** `sandpool token` (development JWTs) and `sandpool keys` (hashed API keys): local to a data dir. */

import { importJWK, SignJWT } from 'jose';

import { DEFAULT_AUDIENCE, createApiKey, parseRole, type Role } from '../../server/auth.js';
import { COMMON_OPTIONS, UsageError, parse, stringOption, type OptionSpec } from '../args.js';
import { defaultDataDir, devSigningKey, readApiKeys, saveApiKeys } from '../state-dir.js';

export const TOKEN_HELP = `Usage: sandpool token [options]

Mint a development JWT signed by this data dir's key; \`sandpool serve\` with the same
--data-dir trusts it. Prints the token.

Options:
  --data-dir DIR     state folder (default ${defaultDataDir()})
  --roles LIST       comma-separated: executor, contributor, reader (default executor)
  --audience AUD     token audience (default ${DEFAULT_AUDIENCE})
  --subject SUB      token subject (default sandpool-dev)
  --expires SECONDS  lifetime (default 3600)
  --json             print {"token", "expiresAt"}
  -h, --help         show this help`;

export const KEYS_HELP = `Usage: sandpool keys create --name NAME [--roles LIST] | sandpool keys list

Manage API keys in a data dir. Only a SHA-256 hash is stored; the key is printed once.

Options:
  --data-dir DIR  state folder (default ${defaultDataDir()})
  --name NAME     label shown in audit records
  --roles LIST    comma-separated: executor, contributor, reader (default executor)
  --json          machine-readable output
  -h, --help      show this help`;

function parseRoles(value: string | undefined): Role[] {
  const roles = new Set<Role>();
  for (const item of (value ?? 'executor')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const role = parseRole(item);
    if (role === undefined) throw new UsageError(`unknown role "${item}" (use executor, contributor or reader)`);
    roles.add(role);
  }
  return [...roles];
}

const TOKEN_OPTIONS: OptionSpec = {
  ...COMMON_OPTIONS,
  'data-dir': { type: 'string' },
  roles: { type: 'string' },
  audience: { type: 'string' },
  subject: { type: 'string' },
  expires: { type: 'string' },
};

export async function token(argv: readonly string[]): Promise<number> {
  const parsed = parse(argv, TOKEN_OPTIONS);
  if (parsed.values['help'] === true) {
    process.stdout.write(`${TOKEN_HELP}\n`);
    return 0;
  }
  const roles = parseRoles(stringOption(parsed, 'roles'));
  const expires = Number(stringOption(parsed, 'expires') ?? '3600');
  if (!Number.isInteger(expires) || expires <= 0) throw new UsageError('--expires must be a positive number of seconds');
  const { privateJwk } = await devSigningKey(stringOption(parsed, 'data-dir') ?? defaultDataDir());
  const key = await importJWK(privateJwk, 'ES256');
  const now = Math.floor(Date.now() / 1000);
  const jwt = await new SignJWT({ roles })
    .setProtectedHeader({ alg: 'ES256', kid: privateJwk.kid ?? 'dev', typ: 'JWT' })
    .setAudience(stringOption(parsed, 'audience') ?? DEFAULT_AUDIENCE)
    .setSubject(stringOption(parsed, 'subject') ?? 'sandpool-dev')
    .setIssuer('sandpool-dev')
    .setIssuedAt(now)
    .setExpirationTime(now + expires)
    .sign(key);
  if (parsed.values['json'] === true) {
    process.stdout.write(`${JSON.stringify({ token: jwt, roles, expiresAt: new Date((now + expires) * 1000).toISOString() })}\n`);
  } else {
    process.stdout.write(`${jwt}\n`);
  }
  return 0;
}

const KEYS_OPTIONS: OptionSpec = {
  ...COMMON_OPTIONS,
  'data-dir': { type: 'string' },
  name: { type: 'string' },
  roles: { type: 'string' },
};

export async function keys(argv: readonly string[]): Promise<number> {
  const parsed = parse(argv, KEYS_OPTIONS);
  const sub = parsed.positionals[0];
  if (parsed.values['help'] === true || sub === undefined) {
    process.stdout.write(`${KEYS_HELP}\n`);
    return sub === undefined && parsed.values['help'] !== true ? 2 : 0;
  }
  const dataDir = stringOption(parsed, 'data-dir') ?? defaultDataDir();
  const stored = await readApiKeys(dataDir);
  if (sub === 'list') {
    const shown = stored.map(({ id, name, roles, createdAt }) => ({ id, name, roles, createdAt }));
    process.stdout.write(
      parsed.values['json'] === true
        ? `${JSON.stringify(shown)}\n`
        : shown.map((k) => `${k.id}  ${k.name}  ${k.roles.join(',')}\n`).join(''),
    );
    return 0;
  }
  if (sub !== 'create') throw new UsageError(`unknown keys command "${sub}" (create or list)`);
  const name = stringOption(parsed, 'name');
  if (name === undefined || !/^[A-Za-z0-9._-]{1,64}$/.test(name))
    throw new UsageError('--name is required: 1–64 letters, digits, ".", "_" or "-"');
  const { key, record } = createApiKey(name, parseRoles(stringOption(parsed, 'roles')));
  await saveApiKeys(dataDir, [...stored, record]);
  process.stdout.write(
    parsed.values['json'] === true ? `${JSON.stringify({ key, id: record.id, name, roles: record.roles })}\n` : `${key}\n`,
  );
  return 0;
}
