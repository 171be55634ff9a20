/**
 * Authentication and roles. Clients only ever send `Authorization: Bearer <token>`, so all three
 * credential kinds arrive the same way: the admin key (`SANDPOOL_ADMIN_KEY`, every role), API keys
 * (stored as SHA-256 hashes, each with roles), and JWTs verified with jose against a JWKS URL or
 * static keys, whose roles come from a claim. Tokens and keys are never logged or forwarded.
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';

import { HttpError } from './http-errors.js';

/** Roles of Azure's built-in role assignments that the server understands. */
export type Role = 'SessionExecutor' | 'Contributor' | 'Reader';
export const ROLES: readonly Role[] = ['SessionExecutor', 'Contributor', 'Reader'];

/** Who made a request. `name` goes into audit records: never a token, never a key. */
export interface Principal {
  readonly kind: 'admin' | 'apiKey' | 'jwt' | 'anonymous';
  readonly name: string;
  readonly roles: ReadonlySet<Role>;
}

/** An API key as stored: the hash of the key, never the key. */
export interface StoredApiKey {
  readonly id: string;
  readonly name: string;
  /** Hex SHA-256 of the key. Keys are 256-bit random, so a fast hash is enough. */
  readonly sha256: string;
  readonly roles: readonly Role[];
  readonly createdAt?: string | undefined;
}

export interface JwtAuthOptions {
  /** JWKS endpoint of the token issuer (e.g. Entra ID's `…/discovery/v2.0/keys`). */
  readonly jwksUrl?: string | undefined;
  /** Static public keys (a JWKS document). */
  readonly jwks?: JSONWebKeySet | undefined;
  /** Expected issuer(s); unchecked when absent. */
  readonly issuer?: string | readonly string[] | undefined;
  /** @default ['https://dynamicsessions.io'] */
  readonly audiences?: readonly string[] | undefined;
  /** Also accept the legacy audience `https://acasessions.io` (SK Python, LangChain.js ask for it). @default false */
  readonly acceptLegacyAudience?: boolean | undefined;
  /** Claim holding the roles (array or space-separated string). @default 'roles' */
  readonly rolesClaim?: string | undefined;
}

export interface AuthOptions {
  /** A bearer token equal to this has every role. Usually from `SANDPOOL_ADMIN_KEY`. */
  readonly adminKey?: string | undefined;
  readonly apiKeys?: readonly StoredApiKey[] | (() => readonly StoredApiKey[]) | undefined;
  readonly jwt?: JwtAuthOptions | undefined;
  /**
   * Allow requests without credentials, with every role. Only for development on loopback: the
   * server's `listen()` refuses a non-loopback address when no credential kind is configured.
   * A function is asked on every request (e.g. "until the first API key exists").
   * @default true when no credential kind is configured, false otherwise
   */
  readonly anonymous?: boolean | (() => boolean) | undefined;
}

export const DEFAULT_AUDIENCE = 'https://dynamicsessions.io';
export const LEGACY_AUDIENCE = 'https://acasessions.io';

/**
 * Role names as they appear in tokens: Azure role names, their GUIDs, and our short names. Compared
 * after lower-casing and removing everything but letters and digits.
 */
const ROLE_ALIASES: Readonly<Record<string, Role>> = {
  sessionexecutor: 'SessionExecutor',
  azurecontainerappssessionexecutor: 'SessionExecutor',
  azurecontainerappssessioncreator: 'SessionExecutor',
  '0fb8eba5a2bb4abeb1c149dfad359bb0': 'SessionExecutor',
  contributor: 'Contributor',
  containerappssessionpoolscontributor: 'Contributor',
  f7669afb68b244b49c5f6d2a47fddda0: 'Contributor',
  b24988ac618042a0ab8820f7382dd24c: 'Contributor',
  reader: 'Reader',
  containerappssessionpoolsreader: 'Reader',
  af61e8fc26334b95bed3421ad6826515: 'Reader',
};

/** Map one role string from a token or a CLI flag to a Role, or undefined when unknown. */
export function parseRole(value: string): Role | undefined {
  const key = value.toLowerCase().replace(/[^a-z0-9]/g, '');
  if (key === 'executor') return 'SessionExecutor';
  // Own keys only: a role named "constructor" must not find Object.prototype's.
  return Object.hasOwn(ROLE_ALIASES, key) ? ROLE_ALIASES[key] : undefined;
}

export const sha256Hex = (value: string): string => createHash('sha256').update(value).digest('hex');

/** A new API key (shown once) and the record to store. */
export function createApiKey(name: string, roles: readonly Role[]): { key: string; record: StoredApiKey } {
  const key = `spk_${randomBytes(32).toString('base64url')}`;
  const id = randomBytes(6).toString('hex');
  return { key, record: { id, name, sha256: sha256Hex(key), roles: [...roles], createdAt: new Date().toISOString() } };
}

function sameSecret(a: string, b: string): boolean {
  // Compare digests so the comparison takes the same time whatever the lengths.
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/** True when at least one credential kind is configured. */
export function authConfigured(options: AuthOptions | undefined): boolean {
  if (options === undefined) return false;
  const keys = typeof options.apiKeys === 'function' ? options.apiKeys() : options.apiKeys;
  return (
    (options.adminKey !== undefined && options.adminKey !== '') ||
    (keys !== undefined && keys.length > 0) ||
    options.jwt !== undefined ||
    typeof options.apiKeys === 'function'
  );
}

type KeyResolver = ReturnType<typeof createLocalJWKSet> | ReturnType<typeof createRemoteJWKSet>;

/** Verifies credentials of incoming requests. One per server. */
export class Authenticator {
  readonly #options: AuthOptions;
  readonly #anonymous: boolean | (() => boolean);
  /** Static keys first, then the JWKS URL: a development key and an identity provider can coexist. */
  readonly #keys: KeyResolver[] = [];
  readonly #audiences: string[];

  constructor(options: AuthOptions = {}) {
    this.#options = options;
    this.#anonymous = options.anonymous ?? !authConfigured(options);
    const jwt = options.jwt;
    if (jwt !== undefined) {
      if (jwt.jwksUrl === undefined && jwt.jwks === undefined) {
        throw new HttpError(500, 'InvalidConfiguration', 'jwt auth needs jwksUrl or jwks');
      }
      if (jwt.jwks !== undefined) this.#keys.push(createLocalJWKSet(jwt.jwks));
      if (jwt.jwksUrl !== undefined) this.#keys.push(createRemoteJWKSet(new URL(jwt.jwksUrl)));
      const audiences = [...(jwt.audiences ?? [DEFAULT_AUDIENCE])];
      if (jwt.acceptLegacyAudience === true) audiences.push(LEGACY_AUDIENCE);
      // Tokens for `https://x/.default` scopes carry `https://x` as audience; accept trailing slashes too.
      this.#audiences = audiences.flatMap((a) => [a, a.endsWith('/') ? a.slice(0, -1) : `${a}/`]);
    } else {
      this.#audiences = [];
    }
  }

  /** Whether unauthenticated requests are let in (development mode). */
  get anonymous(): boolean {
    return typeof this.#anonymous === 'function' ? this.#anonymous() : this.#anonymous;
  }

  /**
   * Identify the caller. Rejects with 401 for a missing or invalid credential; authorisation
   * (403) is `requireRole`'s job.
   */
  async authenticate(authorization: string | undefined): Promise<Principal> {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
    if (token === undefined) {
      if (this.anonymous) return { kind: 'anonymous', name: 'anonymous', roles: new Set(ROLES) };
      throw unauthorized(
        authorization === undefined ? 'no credential: send Authorization: Bearer <token>' : 'malformed Authorization header',
      );
    }
    const admin = this.#options.adminKey;
    if (admin !== undefined && admin !== '' && sameSecret(token, admin)) {
      return { kind: 'admin', name: 'admin', roles: new Set(ROLES) };
    }
    const keys = typeof this.#options.apiKeys === 'function' ? this.#options.apiKeys() : (this.#options.apiKeys ?? []);
    if (keys.length > 0) {
      const digest = sha256Hex(token);
      const found = keys.find((k) => sameSecret(k.sha256, digest));
      if (found !== undefined) return { kind: 'apiKey', name: `key:${found.name}`, roles: new Set(found.roles) };
    }
    if (this.#keys.length > 0 && token.split('.').length === 3) return this.#verifyJwt(token);
    if (this.anonymous) return { kind: 'anonymous', name: 'anonymous', roles: new Set(ROLES) };
    throw unauthorized('invalid credential');
  }

  async #verifyJwt(token: string): Promise<Principal> {
    const jwt = this.#options.jwt!;
    let payload: JWTPayload | undefined;
    let failure: unknown;
    for (const keys of this.#keys) {
      try {
        const verified = await jwtVerify(token, keys, {
          audience: this.#audiences,
          ...(jwt.issuer === undefined ? {} : { issuer: typeof jwt.issuer === 'string' ? jwt.issuer : [...jwt.issuer] }),
          clockTolerance: 60,
        });
        payload = verified.payload;
        break;
      } catch (error) {
        // Keep the most telling failure: a claim check beats "no matching key" from another key set.
        if (failure === undefined || (error as { code?: string }).code !== 'ERR_JWKS_NO_MATCHING_KEY') failure = error;
      }
    }
    if (payload === undefined) {
      // jose's messages name the failed check (audience, signature, expiry) without echoing the token.
      throw unauthorized(`invalid token: ${(failure as Error).message}`);
    }
    const claim = payload[jwt.rolesClaim ?? 'roles'];
    const values = Array.isArray(claim) ? claim : typeof claim === 'string' ? claim.split(/[\s,]+/) : [];
    const roles = new Set<Role>();
    for (const v of values) {
      const role = typeof v === 'string' ? parseRole(v) : undefined;
      if (role !== undefined) roles.add(role);
    }
    const who = [payload['oid'], payload['appid'], payload['azp'], payload.sub].find((v) => typeof v === 'string');
    return { kind: 'jwt', name: `jwt:${String(who ?? 'unknown')}`, roles };
  }
}

function unauthorized(message: string): HttpError {
  return new HttpError(401, 'Unauthorized', message, { headers: { 'www-authenticate': 'Bearer' } });
}

/** Throw 403 unless the principal has one of the roles. */
export function requireRole(principal: Principal, anyOf: readonly Role[]): void {
  if (anyOf.some((r) => principal.roles.has(r))) return;
  throw new HttpError(403, 'AuthorizationFailed', `the caller lacks the role for this operation (needs ${anyOf.join(' or ')})`);
}
