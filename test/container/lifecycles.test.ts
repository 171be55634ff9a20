/**
 * Custom-container pools end to end: OnContainerExit (the session ends when its process exits),
 * Timed (the cooldown removes the container), and a crash-looping image, which the pool reports
 * and retries with backoff instead of spinning hot.
 */

import { afterEach, beforeAll, describe, expect, it } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import type { PoolErrorEvent, SessionDestroyedEvent } from '../../src/index.js';
import { SessionPool } from '../../src/index.js';
import { buildEchoImage, containersOf, ECHO_IMAGE, podmanAvailable } from './helpers.js';

const available = podmanAvailable();

const until = async (predicate: () => boolean, timeoutMs: number): Promise<void> => {
  const end = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe.skipIf(!available)('container backend: custom-container pool lifecycles', () => {
  let pool: SessionPool | undefined;

  beforeAll(() => {
    buildEchoImage();
  });

  afterEach(async () => {
    const owner = pool?.ownerId;
    await pool?.close();
    pool = undefined;
    if (owner !== undefined) expect(containersOf(owner)).toEqual([]);
  });

  it('OnContainerExit: the session is destroyed as "exited" when its process exits', async () => {
    pool = new SessionPool({
      name: 'ctest-exit',
      backend: new ContainerBackend(),
      containerType: 'CustomContainer',
      lifecycleType: 'OnContainerExit',
      readySessionInstances: 1,
      customContainerTemplate: { image: ECHO_IMAGE, targetPort: 8080, env: [{ name: 'TOKEN', secretRef: 'token' }] },
      secrets: [{ name: 'token', value: 'secret-token-value' }],
    });
    const destroyed: SessionDestroyedEvent[] = [];
    pool.on('sessionDestroyed', (e) => destroyed.push(e));
    await pool.start();
    const session = await pool.acquire('exit-me');
    expect(await (await session.fetch(new Request('http://s/env/TOKEN'))).text()).toBe('secret-token-value');
    await (await session.fetch(new Request('http://s/exit?code=0'))).text();
    await until(() => destroyed.some((e) => e.identifier === 'exit-me'), 30_000);
    expect(destroyed.find((e) => e.identifier === 'exit-me')?.reason).toBe('exited');
    expect(JSON.stringify(destroyed)).not.toContain('secret-token-value');
  }, 120_000);

  it('Timed: the cooldown destroys an idle session and its container', async () => {
    pool = new SessionPool({
      name: 'ctest-timed',
      backend: new ContainerBackend(),
      containerType: 'CustomContainer',
      lifecycleType: 'Timed',
      cooldownPeriodInSeconds: 1,
      readySessionInstances: 0,
      customContainerTemplate: { image: ECHO_IMAGE, targetPort: 8080 },
    });
    const destroyed: SessionDestroyedEvent[] = [];
    pool.on('sessionDestroyed', (e) => destroyed.push(e));
    await pool.start();
    const session = await pool.acquire('idle-one');
    const etag = session.info().etag;
    expect(containersOf(pool.ownerId).length).toBe(1);
    await until(() => destroyed.some((e) => e.identifier === 'idle-one'), 30_000);
    expect(destroyed[0]?.reason).toBe('cooldown');
    expect(etag).not.toBe('');
    // The event may precede the engine's removal by a moment on a loaded machine.
    const owner = pool.ownerId;
    await until(() => containersOf(owner).length === 0, 30_000);
  }, 120_000);

  it('a crash-looping image is reported and retried with backoff, never hot', async () => {
    pool = new SessionPool({
      name: 'ctest-crash',
      backend: new ContainerBackend(),
      containerType: 'CustomContainer',
      readySessionInstances: 1,
      customContainerTemplate: { image: ECHO_IMAGE, targetPort: 8080, env: [{ name: 'CRASH_AT_START', value: '1' }] },
    });
    const errors: PoolErrorEvent[] = [];
    pool.on('error', (e) => errors.push(e));
    void pool.start().catch(() => {});
    const failures = () => errors.filter((e) => e.operation === 'create');
    await until(() => failures().length >= 3, 90_000);
    const [first, second, third] = failures() as [PoolErrorEvent, PoolErrorEvent, PoolErrorEvent];
    expect(first.error.message).toMatch(/exited with code 3/);
    // Backoff: each retry waits at least the announced delay, and the delays grow.
    expect(first.retryInMs).toBeGreaterThan(0);
    expect(second.retryInMs!).toBeGreaterThanOrEqual(first.retryInMs!);
    expect(second.at - first.at).toBeGreaterThanOrEqual(first.retryInMs! * 0.9);
    expect(third.at - second.at).toBeGreaterThanOrEqual(second.retryInMs! * 0.9);
    expect(pool.stats().createFailures).toBeGreaterThanOrEqual(3);
  }, 120_000);
});
