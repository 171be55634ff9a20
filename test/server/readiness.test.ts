/**
 * /healthz answers as soon as the server listens; /readyz answers 503 with each pool's state while
 * pools are announced (backend being probed), starting or failing, and 200 once all are ready.
 */

import { afterEach, describe, expect, it } from 'vitest';

import { SessionPool } from '../../src/index.js';
import { FakeBackend } from '../helpers/fake-backend.js';
import { startServer, type Harness } from './helpers.js';

interface ReadyBody {
  status: string;
  pools: { name: string; state: string; backend?: string; readySessions?: number; readySessionInstances?: number }[];
}

async function readyz(h: Harness): Promise<{ status: number; body: ReadyBody; retryAfter: string | null }> {
  // No credential: orchestrators probe it unauthenticated, like /healthz.
  const response = await fetch(`${h.url}/readyz`);
  return { status: response.status, body: (await response.json()) as ReadyBody, retryAfter: response.headers.get('retry-after') };
}

function fakePool(name: string, backend: FakeBackend, ready = 2): SessionPool {
  return new SessionPool({ name, backend, containerType: 'PythonLTS', readySessionInstances: ready, maxConcurrentSessions: 4 });
}

describe('readiness', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('answers /healthz at once and /readyz 503 until announced pools are added and filled', async () => {
    h = await startServer({ withDefaultPool: false });
    const python = h.server.announcePool('python');
    const shell = h.server.announcePool('shell');

    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
    let r = await readyz(h);
    expect(r.status).toBe(503);
    expect(r.retryAfter).toBe('5');
    expect(r.body).toEqual({
      status: 'starting',
      pools: [
        { name: 'python', state: 'probing' },
        { name: 'shell', state: 'probing' },
      ],
    });

    // No backend can run `shell` here: it will not come, and does not hold readiness back.
    shell.unavailable();
    const backend = new FakeBackend();
    backend.createDelayMs = 300;
    python.add(fakePool('python', backend));
    r = await readyz(h);
    expect(r.status).toBe(503);
    expect(r.body.pools).toEqual([
      { name: 'python', state: 'starting', backend: 'fake', readySessions: 0, readySessionInstances: 2 },
      { name: 'shell', state: 'unavailable' },
    ]);

    await expect.poll(async () => (await readyz(h!)).status, { timeout: 10_000, interval: 100 }).toBe(200);
    r = await readyz(h);
    expect(r.body).toEqual({
      status: 'ready',
      pools: [
        { name: 'python', state: 'ready', backend: 'fake', readySessions: 2, readySessionInstances: 2 },
        { name: 'shell', state: 'unavailable' },
      ],
    });
    expect(h.server.readiness().ready).toBe(true);
    // The log told how the pool came up.
    const messages = h.logs.map((l) => l.msg);
    expect(messages).toContain('pool "python": 1 of 2 ready sessions up');
    expect(messages).toContain('pool "python" is ready');
  });

  it('reports a pool whose start fails as failed (503) until it recovers', async () => {
    h = await startServer({ withDefaultPool: false });
    const backend = new FakeBackend();
    backend.failCreates = 1_000;
    h.server.announcePool('broken').add(fakePool('broken', backend, 1));
    await expect.poll(async () => (await readyz(h!)).body.pools[0]?.state, { timeout: 60_000, interval: 200 }).toBe('failed');
    expect((await readyz(h)).status).toBe(503);
    backend.failCreates = 0;
    await expect.poll(async () => (await readyz(h!)).status, { timeout: 60_000, interval: 200 }).toBe(200);
  }, 90_000);

  it('is ready with pools given in code once they are filled, and with no pools at all', async () => {
    h = await startServer({ withDefaultPool: false });
    expect((await readyz(h)).body).toEqual({ status: 'ready', pools: [] });
    await h.close();
    h = await startServer();
    await expect.poll(async () => (await readyz(h!)).status, { timeout: 10_000, interval: 100 }).toBe(200);
    expect((await readyz(h)).body.pools).toEqual([
      { name: 'js', state: 'ready', backend: 'quickjs', readySessions: 1, readySessionInstances: 1 },
    ]);
  });
});
