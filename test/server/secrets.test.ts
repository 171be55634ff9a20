/**
 * Secrets of a pool defined through the server (PUT/PATCH /pools/NAME) never come back from the
 * API, error answers or logs, and the stored definition is readable by the server's user only.
 * (The container half of this class, secrets reaching a session's environment and nowhere else,
 * is test/container/secrets.test.ts.)
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { QuickJSBackend } from '../../backends/quickjs/index.js';
import { createServer, type LogRecord } from '../../src/server/index.js';

const newSecret = () => `sk-sandpool-${randomBytes(12).toString('hex')}`;

function expectAbsent(haystack: unknown, secret: string, what: string): void {
  const text = typeof haystack === 'string' ? haystack : JSON.stringify(haystack);
  expect(text.includes(secret), `${what} contains the secret`).toBe(false);
}

describe('secrets of a pool defined through the server', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'sandpool-security-secrets-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('never come back from GET /pools, error answers or the logs; the stored definition is 0600', async () => {
    const secret = newSecret();
    const adminKey = `admin-${randomBytes(16).toString('hex')}`;
    const logs: LogRecord[] = [];
    const server = createServer({
      pools: [],
      backends: { quickjs: () => new QuickJSBackend() },
      auth: { adminKey },
      dataDir,
      logger: (record) => logs.push(record),
    });
    const { url } = await server.listen({ host: '127.0.0.1', port: 0 });
    const request = (path: string, init: RequestInit = {}) =>
      fetch(`${url}${path}`, { ...init, headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' } });
    const answers: string[] = [];
    try {
      const put = await request('/pools/secretive', {
        method: 'PUT',
        body: JSON.stringify({
          properties: {
            containerType: 'NodeLTS',
            scaleConfiguration: { readySessionInstances: 0, maxConcurrentSessions: 2 },
            secrets: [{ name: 'api-key', value: secret }],
          },
        }),
      });
      answers.push(await put.text());
      expect(put.status).toBe(201);
      for (const path of ['/pools', '/pools/secretive']) {
        const got = await request(path);
        expect(got.status).toBe(200);
        answers.push(await got.text());
      }
      expect(answers.at(-1)).toContain('api-key'); // the secret's name is shown, its value never
      // A rejected definition carrying the secret: the 400 names the problem, not the value.
      const bad = await request('/pools/bad-secret', {
        method: 'PUT',
        body: JSON.stringify({
          properties: { containerType: 'NodeLTS', secrets: [{ name: '', value: secret }], limits: { memoryMb: secret } },
        }),
      });
      expect(bad.status).toBe(400);
      answers.push(await bad.text());
      const patch = await request('/pools/secretive', {
        method: 'PATCH',
        body: JSON.stringify({ properties: { secrets: [{ name: 'api-key', value: secret }] } }),
      });
      answers.push(await patch.text());
      const stored = readdirSync(join(dataDir, 'pools'));
      for (const file of stored) expect(statSync(join(dataDir, 'pools', file)).mode & 0o777, file).toBe(0o600);
    } finally {
      await server.close();
    }
    expect(logs.length).toBeGreaterThan(0);
    for (const answer of answers) expectAbsent(answer, secret, `answer ${answer.slice(0, 80)}`);
    expectAbsent(logs, secret, 'server logs');
  }, 120_000);
});
