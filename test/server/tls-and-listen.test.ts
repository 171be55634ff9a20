/** HTTPS from certificate files, the loopback rule, and close() releasing the port. */

import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { createServer, isLoopback, silentLogger } from '../../src/server/index.js';
import { jsPool } from './helpers.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sandpool-tls-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('listening', () => {
  test('HTTPS with the given certificate', async () => {
    const server = createServer({
      pools: [jsPool('js')],
      auth: { adminKey: 'tls-admin-key-123456' },
      tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') },
      logger: silentLogger,
    });
    try {
      const { url, port } = await server.listen({ port: 0 });
      expect(url).toBe(`https://127.0.0.1:${port}`);
      const ca = await readFile(join(dir, 'cert.pem'));
      const body = await new Promise<string>((resolve, reject) => {
        const req = request(
          `${url}/pools/js/executions?identifier=tls-session-1`,
          { method: 'POST', ca, headers: { authorization: 'Bearer tls-admin-key-123456' } },
          (res) => {
            let text = '';
            res.on('data', (c: Buffer) => (text += c.toString()));
            res.on('end', () => resolve(text));
          },
        );
        req.on('error', reject);
        req.end('{"code":"6*7"}');
      });
      expect(JSON.parse(body)).toMatchObject({ status: 'Succeeded', result: { executionResult: 42 } });
      const pool = JSON.parse(
        await new Promise<string>((resolve, reject) => {
          request(`${url}/pools/js`, { ca, headers: { authorization: 'Bearer tls-admin-key-123456' } }, (res) => {
            let text = '';
            res.on('data', (c: Buffer) => (text += c.toString()));
            res.on('end', () => resolve(text));
          })
            .on('error', reject)
            .end();
        }),
      ) as { properties: { poolManagementEndpoint: string } };
      expect(pool.properties.poolManagementEndpoint).toBe(`https://127.0.0.1:${port}/pools/js`);
    } finally {
      await server.close();
    }
  });

  test('no credential configured: loopback only; close() frees the port and closes the pools', async () => {
    expect(
      isLoopback('127.0.0.1') &&
        isLoopback('::1') &&
        isLoopback('localhost') &&
        !isLoopback('0.0.0.0') &&
        !isLoopback('10.0.0.1'),
    ).toBe(true);
    const pool = jsPool('js');
    const open = createServer({ pools: [pool], logger: silentLogger });
    await expect(open.listen({ host: '0.0.0.0', port: 0 })).rejects.toThrow(
      /refusing to listen on 0\.0\.0\.0 without authentication/,
    );
    const { port } = await open.listen({ host: '127.0.0.1', port: 0 });
    expect((await fetch(`http://127.0.0.1:${port}/pools`)).status).toBe(200);
    await open.close();
    expect(pool.closed).toBe(true);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });
});
