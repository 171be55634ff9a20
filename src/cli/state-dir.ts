/**
 * The per-user state folder (pool definitions, hashed API keys, development JWT keys) and the
 * files in it. Everything is written 0600 inside a 0700 folder.
 */

import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { exportJWK, generateKeyPair, type JSONWebKeySet, type JWK } from 'jose';

import type { StoredApiKey } from '../server/auth.js';

/** `$XDG_STATE_HOME/sandpool`, `~/.local/state/sandpool`, or the platform's equivalent. */
export function defaultDataDir(): string {
  if (process.env['SANDPOOL_DATA_DIR'] !== undefined && process.env['SANDPOOL_DATA_DIR'] !== '')
    return process.env['SANDPOOL_DATA_DIR'];
  if (process.platform === 'win32') return join(process.env['LOCALAPPDATA'] ?? join(homedir(), 'AppData', 'Local'), 'sandpool');
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Application Support', 'sandpool');
  return join(process.env['XDG_STATE_HOME'] ?? join(homedir(), '.local', 'state'), 'sandpool');
}

async function writePrivate(file: string, content: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, content, { mode: 0o600 });
  await rename(tmp, file);
}

const keysFile = (dataDir: string): string => join(dataDir, 'api-keys.json');

export async function readApiKeys(dataDir: string): Promise<StoredApiKey[]> {
  try {
    const parsed = JSON.parse(await readFile(keysFile(dataDir), 'utf8')) as { keys?: StoredApiKey[] };
    return Array.isArray(parsed.keys) ? parsed.keys : [];
  } catch {
    return [];
  }
}

export async function saveApiKeys(dataDir: string, keys: readonly StoredApiKey[]): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await writePrivate(keysFile(dataDir), `${JSON.stringify({ keys }, null, 2)}\n`);
}

/** A reader of the API-key file for the server that re-reads it when it changes (keys added by the CLI). */
export function watchApiKeys(dataDir: string): () => StoredApiKey[] {
  let mtime = -1;
  let cached: StoredApiKey[] = [];
  return () => {
    const file = keysFile(dataDir);
    try {
      const m = existsSync(file) ? statSync(file).mtimeMs : 0;
      if (m !== mtime) {
        mtime = m;
        cached = m === 0 ? [] : ((JSON.parse(readFileSync(file, 'utf8')) as { keys?: StoredApiKey[] }).keys ?? []);
      }
    } catch {
      cached = [];
    }
    return cached;
  };
}

const devDir = (dataDir: string): string => join(dataDir, 'dev-jwt');

/** The development signing key pair, created on first use (`sandpool token`). */
export async function devSigningKey(dataDir: string): Promise<{ privateJwk: JWK; jwks: JSONWebKeySet }> {
  const dir = devDir(dataDir);
  try {
    const privateJwk = JSON.parse(await readFile(join(dir, 'private.jwk.json'), 'utf8')) as JWK;
    const jwks = JSON.parse(await readFile(join(dir, 'jwks.json'), 'utf8')) as JSONWebKeySet;
    return { privateJwk, jwks };
  } catch {
    // none yet: create below
  }
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = `sandpool-dev-${Date.now().toString(36)}`;
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: 'ES256' };
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] };
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writePrivate(join(dir, 'private.jwk.json'), `${JSON.stringify(privateJwk)}\n`);
  await writePrivate(join(dir, 'jwks.json'), `${JSON.stringify(jwks, null, 2)}\n`);
  return { privateJwk, jwks };
}

/** The development JWKS, when `sandpool token` has created one in this data dir. */
export function devJwks(dataDir: string): JSONWebKeySet | undefined {
  try {
    return JSON.parse(readFileSync(join(devDir(dataDir), 'jwks.json'), 'utf8')) as JSONWebKeySet;
  } catch {
    return undefined;
  }
}
