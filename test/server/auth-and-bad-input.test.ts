/** Credentials (admin key, hashed API keys, JWTs) and hostile input: every case gets the right status and envelope. */

import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';

import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { createApiKey } from '../../src/server/index.js';
import { jsPool, json, newIdentifier, startServer, type Harness } from './helpers.js';

let h: Harness;
type SigningKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let signingKey: SigningKey;
let otherKey: SigningKey;
let jwk: JWK;
let jwksServer: ReturnType<typeof createHttpServer>;
let jwksUrl: string;
const executorKey = createApiKey('ci-executor', ['SessionExecutor']);
const readerKey = createApiKey('ci-reader', ['Reader']);

async function mint(
  claims: Record<string, unknown>,
  options: { audience?: string; key?: SigningKey; expiresIn?: string } = {},
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setAudience(options.audience ?? 'https://dynamicsessions.io')
    .setSubject('user-1')
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '10m')
    .sign(options.key ?? signingKey);
}

beforeAll(async () => {
  const pair = await generateKeyPair('ES256', { extractable: true });
  signingKey = pair.privateKey;
  otherKey = (await generateKeyPair('ES256')).privateKey;
  jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
  // A real JWKS endpoint on loopback, standing in for the identity provider.
  jwksServer = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/keys`;
  h = await startServer({
    pools: [jsPool('js', { maxConcurrentSessions: 50, limits: { maxFileSizeBytes: 1024 } })],
    auth: {
      adminKey: 'test-admin-key-0123456789',
      apiKeys: [executorKey.record, readerKey.record],
      jwt: { jwksUrl, acceptLegacyAudience: true },
    },
    maxJsonBytes: 64 * 1024,
    headersTimeoutMs: 1000,
  });
});
afterAll(async () => {
  await h.close();
  await new Promise((resolve) => jwksServer.close(resolve));
});

const exec = (token: string | undefined, body: unknown = { code: '1' }): Promise<Response> =>
  fetch(`${h.url}/pools/js/executions?identifier=${newIdentifier()}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body),
  });

describe('authentication and roles', () => {
  test('no credential → 401 with WWW-Authenticate; unknown key → 401', async () => {
    const none = await exec(undefined);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    expect((await json(none))['error'].code).toBe('Unauthorized');
    expect((await exec('spk_not-a-key')).status).toBe(401);
  });

  test('API keys are matched by hash and carry their roles', async () => {
    expect(executorKey.record.sha256).not.toContain(executorKey.key);
    expect((await exec(executorKey.key)).status).toBe(200);
    const reader = await exec(readerKey.key);
    expect(reader.status).toBe(403);
    expect((await json(reader))['error'].code).toBe('AuthorizationFailed');
    const pools = await fetch(`${h.url}/pools`, { headers: { authorization: `Bearer ${readerKey.key}` } });
    expect(pools.status).toBe(200);
    const put = await fetch(`${h.url}/pools/other`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${readerKey.key}` },
      body: '{}',
    });
    expect(put.status).toBe(403);
  });

  test('JWTs from the JWKS URL: Azure role names and GUIDs, both audiences', async () => {
    expect((await exec(await mint({ roles: ['Azure ContainerApps Session Executor'] }))).status).toBe(200);
    expect((await exec(await mint({ roles: ['0fb8eba5-a2bb-4abe-b1c1-49dfad359bb0'] }))).status).toBe(200);
    expect((await exec(await mint({ roles: 'SessionExecutor' }, { audience: 'https://acasessions.io' }))).status).toBe(200);
    const contributorOnly = await exec(await mint({ roles: ['Container Apps SessionPools Contributor'] }));
    expect(contributorOnly.status).toBe(403);
  });

  test('wrong audience, wrong signature, expired → 401 naming the check', async () => {
    const audience = await exec(await mint({ roles: ['SessionExecutor'] }, { audience: 'https://management.azure.com' }));
    expect(audience.status).toBe(401);
    expect((await json(audience))['error'].message).toMatch(/aud/);
    const signature = await exec(await mint({ roles: ['SessionExecutor'] }, { key: otherKey }));
    expect(signature.status).toBe(401);
    expect((await json(signature))['error'].message).toMatch(/signature/);
    const expired = await exec(await mint({ roles: ['SessionExecutor'] }, { expiresIn: '-5m' }));
    expect(expired.status).toBe(401);
  });

  test('credentials never reach the logs', async () => {
    await exec(executorKey.key);
    const text = JSON.stringify(h.logs);
    expect(text).not.toContain(executorKey.key);
    expect(text).not.toContain('test-admin-key-0123456789');
    const audits = h.logs.filter((r) => r['type'] === 'audit');
    expect(
      audits.some((a) => a['principal'] === 'key:ci-executor' && a['operation'] === 'gen2.execute' && a['status'] === 200),
    ).toBe(true);
  });
});

const admin = { authorization: 'Bearer test-admin-key-0123456789' };

describe('bad input', () => {
  test('malformed JSON, non-object JSON, wrong types → 400 envelopes', async () => {
    const url = `${h.url}/pools/js/code/execute?identifier=${newIdentifier()}`;
    for (const body of ['{"properties": {', '[1,2]', '"x"', '{"properties":{"code":5}}']) {
      const r = await fetch(url, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body });
      expect(r.status).toBe(400);
      expect(r.headers.get('x-ms-error-code')).toMatch(/InvalidRequestContent|SessionRequestValidationFailed/);
      expect(typeof (await json(r))['error'].message).toBe('string');
    }
    const missing = await fetch(url, { method: 'POST', headers: admin, body: '{"properties":{}}' });
    expect((await json(missing))['error'].code).toBe('SessionPropertiesMissing');
  });

  test('bad identifiers → 400 SessionRequestValidationFailed', async () => {
    for (const id of ['abc', 'a'.repeat(129), 'has space', 'slash/inside', 'ünïcode', 'semi;ok+plus']) {
      const r = await fetch(`${h.url}/pools/js/executions?identifier=${encodeURIComponent(id)}`, {
        method: 'POST',
        headers: admin,
        body: '{"code":"1"}',
      });
      expect(r.status).toBe(400);
      expect((await json(r))['error'].code).toBe('SessionRequestValidationFailed');
    }
    const missing = await fetch(`${h.url}/pools/js/executions`, { method: 'POST', headers: admin, body: '{"code":"1"}' });
    expect(missing.status).toBe(400);
  });

  test('oversized JSON body → 413; oversized headers → 431', async () => {
    const big = JSON.stringify({ code: 'x'.repeat(100 * 1024) });
    const r = await fetch(`${h.url}/pools/js/executions?identifier=${newIdentifier()}`, {
      method: 'POST',
      headers: admin,
      body: big,
    });
    expect(r.status).toBe(413);
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${h.url}/healthz`, { headers: { 'x-filler': 'y'.repeat(64 * 1024) } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(431);
  });

  test('uploads: not multipart → 415; over the cap → 413 (backend without files → 400)', async () => {
    const url = `${h.url}/pools/js/files/upload?identifier=${newIdentifier()}`;
    const notMultipart = await fetch(url, { method: 'POST', headers: admin, body: 'x' });
    expect([400, 415]).toContain(notMultipart.status);
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(4096)]), 'big.bin');
    const r = await fetch(url, { method: 'POST', headers: admin, body: form });
    // QuickJS has no files: the capability check answers first.
    expect(r.status).toBe(400);
    expect((await json(r))['error'].code).toBe('SessionRequestNotSupported');
  });

  test('unknown pool → 404; unknown route → 404; shell fields on a code pool → 400', async () => {
    const r = await fetch(`${h.url}/pools/nope/executions?identifier=${newIdentifier()}`, {
      method: 'POST',
      headers: admin,
      body: '{"code":"1"}',
    });
    expect(r.status).toBe(404);
    expect((await json(r))['error'].code).toBe('SessionPoolNotFound');
    expect((await fetch(`${h.url}/pools/js/what`, { method: 'POST', headers: admin })).status).toBe(404);
    const shell = await fetch(`${h.url}/pools/js/executions?identifier=${newIdentifier()}`, {
      method: 'POST',
      headers: admin,
      body: '{"shellCommand":"ls"}',
    });
    expect((await json(shell))['error'].code).toBe('SessionRequestNotSupported');
  });

  test('a slow client that never finishes its headers is disconnected; others are served meanwhile', async () => {
    const { connect } = await import('node:net');
    const port = Number(new URL(h.url).port);
    const socket = connect(port, '127.0.0.1');
    const closed = new Promise<string>((resolve) => {
      let got = '';
      socket.on('data', (c: Buffer) => (got += c.toString()));
      socket.on('close', () => resolve(got));
    });
    socket.write('POST /pools/js/executions HTTP/1.1\r\nHost: x\r\n');
    const trickle = setInterval(() => socket.write('X-Slow: 1\r\n'), 200);
    try {
      expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
      const answer = await closed;
      expect(answer === '' || answer.startsWith('HTTP/1.1 408')).toBe(true);
    } finally {
      clearInterval(trickle);
      socket.destroy();
    }
  }, 20_000);
});
