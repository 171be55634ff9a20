/**
 * Secrets given to a pool (customContainerTemplate env secretRef → secrets) reach the session's
 * environment and nowhere else: not pool events, errors, pool statistics, the Azure properties
 * derived from the options, the server's GET /pools answers or audit logs, nor the backend's
 * diagnostics — even when the container prints its secret and crashes before it is Ready.
 */

import { randomBytes } from 'node:crypto';

import { afterAll, describe, expect, it } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { optionsToAzureProperties } from '../../src/azure-properties.js';
import { SessionPool, type SessionPoolEventName } from '../../src/index.js';
import { buildEchoImage, containersOf, podmanAvailable } from './helpers.js';

const available = podmanAvailable();
const EVENTS: SessionPoolEventName[] = [
  'sessionPending',
  'sessionReady',
  'sessionAllocated',
  'sessionDestroyed',
  'executionStarted',
  'executionFinished',
  'poolExhausted',
  'error',
];

const newSecret = () => `sk-sandpool-${randomBytes(12).toString('hex')}`;

/** Everything a pool emits, serialised the way a logger would (errors with message, code and details). */
function recordEverything(pool: SessionPool): string[] {
  const seen: string[] = [];
  for (const name of EVENTS) {
    pool.on(name, (event: unknown) => {
      const e = event as { error?: { message: string; code: string; details?: unknown; stack?: string } };
      seen.push(
        JSON.stringify({
          name,
          event,
          error: e.error && { m: e.error.message, c: e.error.code, d: e.error.details, s: e.error.stack },
        }),
      );
    });
  }
  return seen;
}

function expectAbsent(haystack: unknown, secret: string, what: string): void {
  const text = typeof haystack === 'string' ? haystack : JSON.stringify(haystack);
  expect(text.includes(secret), `${what} contains the secret`).toBe(false);
}

describe.skipIf(!available)('secrets of a custom-container pool', () => {
  const backendLog: string[] = [];
  const owners: string[] = [];

  afterAll(() => {
    for (const owner of owners) expect(containersOf(owner)).toEqual([]);
  });

  it('reach the session environment, but no event, stat, Azure property or backend log', async () => {
    const secret = newSecret();
    const image = buildEchoImage();
    const pool = new SessionPool({
      name: 'sec-secrets',
      backend: new ContainerBackend({ onLog: (e) => backendLog.push(e.message) }),
      containerType: 'CustomContainer',
      readySessionInstances: 1,
      customContainerTemplate: { image, targetPort: 8080, env: [{ name: 'API_KEY', secretRef: 'api-key' }] },
      secrets: [{ name: 'api-key', value: secret }],
    });
    owners.push(pool.ownerId);
    const seen = recordEverything(pool);
    try {
      await pool.start();
      const session = await pool.acquire(SessionPool.generateIdentifier());
      // Positive control: the secret really is in the session, so its absence elsewhere means something.
      const env = await session.fetch(new Request('http://session/env/API_KEY'));
      expect(await env.text()).toBe(secret);
      await session.stop();

      const properties = optionsToAzureProperties(pool.options);
      expectAbsent(properties, secret, 'Azure properties');
      expect(JSON.stringify(properties)).toContain('"secretRef":"api-key"');
      expectAbsent(pool.stats(), secret, 'pool stats');
      expectAbsent(pool.sessions(), secret, 'pool sessions');
    } finally {
      await pool.close();
    }
    expect(seen.length).toBeGreaterThan(3);
    expectAbsent(seen, secret, 'pool events');
    expectAbsent(backendLog, secret, 'backend log');
  }, 240_000);

  it('stay masked when the container prints them and crashes before it is Ready', async () => {
    const secret = newSecret();
    const image = buildEchoImage();
    const pool = new SessionPool({
      name: 'sec-secrets-crash',
      backend: new ContainerBackend({ onLog: (e) => backendLog.push(e.message) }),
      containerType: 'CustomContainer',
      readySessionInstances: 1,
      customContainerTemplate: {
        image,
        targetPort: 8080,
        command: ['sh', '-c', 'echo "leaking $API_KEY"; echo "$API_KEY" >&2; exit 3'],
        env: [{ name: 'API_KEY', secretRef: 'api-key' }],
      },
      secrets: [{ name: 'api-key', value: secret }],
    });
    owners.push(pool.ownerId);
    const seen = recordEverything(pool);
    const errors: string[] = [];
    pool.on('error', (e) => errors.push(e.error.message));
    try {
      await pool.start().catch((e: unknown) => errors.push(String(e)));
      const acquired = await pool.acquire(SessionPool.generateIdentifier(), { timeoutMs: 20_000 }).then(
        () => 'acquired',
        (e: unknown) => `${String(e)} ${JSON.stringify(e)}`,
      );
      expect(acquired).not.toBe('acquired');
      errors.push(acquired);
      await expect.poll(() => errors.some((m) => m.includes('leaking')), { timeout: 120_000, interval: 500 }).toBe(true);
      expectAbsent(pool.stats(), secret, 'pool stats (lastError)');
    } finally {
      await pool.close();
    }
    // The crash output is reported (so an operator sees why), with the value masked.
    expect(errors.join('\n')).toMatch(/leaking \*\*\*/);
    expectAbsent(errors, secret, 'errors');
    expectAbsent(seen, secret, 'pool events');
    expectAbsent(backendLog, secret, 'backend log');
  }, 240_000);
});
