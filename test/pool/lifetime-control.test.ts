/** `session.extend(seconds)` and `pool.release(identifier)`: explicit lifetime control. */
import { afterEach, describe, expect, it, vi } from 'vitest';

import {
  ErrorCode,
  InvalidIdentifierError,
  InvalidRequestError,
  SessionNotFoundError,
  SessionPool,
  type SessionDestroyedEvent,
} from '../../src/index.js';
import { FakeBackend } from '../helpers/fake-backend.js';

const pools: SessionPool[] = [];
function makePool(options: Partial<ConstructorParameters<typeof SessionPool>[0]> = {}, backend = new FakeBackend()) {
  const pool = new SessionPool({ backend, containerType: 'NodeLTS', readySessionInstances: 1, ...options });
  pools.push(pool);
  return { pool, backend };
}

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

describe('session.extend', () => {
  it('pushes the cooldown out; activity afterwards still restarts the cooldown', async () => {
    vi.useFakeTimers();
    const { pool } = makePool({ cooldownPeriodInSeconds: 10 });
    const destroyed: SessionDestroyedEvent[] = [];
    pool.on('sessionDestroyed', (e) => destroyed.push(e));
    const s = await pool.acquire('extend-cooldown');
    const t0 = Date.now();
    const expiresAt = await s.extend(60);
    expect(expiresAt?.getTime()).toBe(t0 + 60_000);
    expect(s.info().expiresAt?.getTime()).toBe(t0 + 60_000);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(s.state).toBe('Allocated'); // the 10 s cooldown alone would have reaped it at 10 s
    await vi.advanceTimersByTimeAsync(25_000);
    await s.execute({ code: 'touch' }); // at 55 s: the cooldown now ends at 65 s, after the extension
    expect(s.info().expiresAt?.getTime()).toBe(t0 + 65_000);
    await vi.advanceTimersByTimeAsync(9_000);
    expect(s.state).toBe('Allocated');
    await vi.advanceTimersByTimeAsync(1_001);
    expect(s.state).toBe('Destroyed');
    expect(destroyed).toEqual([expect.objectContaining({ reason: 'cooldown', identifier: 'extend-cooldown' })]);
  });

  it('pushes maxAlive out', async () => {
    vi.useFakeTimers();
    const { pool } = makePool({ lifecycleType: 'OnContainerExit', maxAlivePeriodInSeconds: 5 });
    const s = await pool.acquire('extend-alive');
    await s.extend(20);
    await vi.advanceTimersByTimeAsync(19_000);
    expect(s.state).toBe('Allocated');
    await vi.advanceTimersByTimeAsync(1_001);
    expect(s.state).toBe('Destroyed');
    expect(pool.stats().destroyed.maxAlive).toBe(1);
  });

  it('never shortens a deadline, and a shorter later extension keeps the longer one', async () => {
    vi.useFakeTimers();
    const { pool } = makePool({ cooldownPeriodInSeconds: 300 });
    const s = await pool.acquire('extend-short');
    const before = s.info().expiresAt!.getTime();
    expect((await s.extend(5))!.getTime()).toBe(before);
    await s.extend(1000);
    const long = s.info().expiresAt!.getTime();
    await s.extend(400);
    expect(s.info().expiresAt!.getTime()).toBe(long);
  });

  it('rejects a bad duration with InvalidRequestError and a destroyed session with SessionNotFoundError', async () => {
    const { pool } = makePool();
    const s = await pool.acquire('extend-bad');
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 365 * 24 * 3600 + 1, '60', undefined]) {
      await expect(s.extend(bad as number)).rejects.toBeInstanceOf(InvalidRequestError);
    }
    await s.stop();
    await expect(s.extend(60)).rejects.toBeInstanceOf(SessionNotFoundError);
  });
});

describe('pool.release', () => {
  it('ends the identifier’s session (reason stopped); the identifier then gets a fresh one', async () => {
    const { pool, backend } = makePool();
    const destroyed: SessionDestroyedEvent[] = [];
    pool.on('sessionDestroyed', (e) => destroyed.push(e));
    const s = await pool.acquire('release-me');
    expect(await pool.release('release-me')).toBe(true);
    expect(s.state).toBe('Destroyed');
    expect(backend.live.has(s.id)).toBe(false);
    expect(pool.get('release-me')).toBeUndefined();
    expect(destroyed).toEqual([expect.objectContaining({ reason: 'stopped', identifier: 'release-me', sessionId: s.id })]);
    await expect(s.execute({ code: 'x' })).rejects.toMatchObject({ code: ErrorCode.SESSION_NOT_FOUND });
    const again = await pool.acquire('release-me');
    expect(again.id).not.toBe(s.id);
    expect(pool.stats().destroyed.stopped).toBe(1);
  });

  it('answers false for an identifier without a session and rejects an invalid one', async () => {
    const { pool } = makePool();
    expect(await pool.release('nobody-here')).toBe(false);
    await expect(pool.release('no')).rejects.toBeInstanceOf(InvalidIdentifierError);
    await expect(pool.release(42 as unknown as string)).rejects.toBeInstanceOf(InvalidIdentifierError);
    expect(pool.stats().destroyed.stopped).toBe(0);
  });

  it('waits for an acquire of the identifier in flight and ends the session it yields', async () => {
    const { pool, backend } = makePool({ readySessionInstances: 0 });
    backend.createDelayMs = 20;
    const acquiring = pool.acquire('in-flight');
    const released = await pool.release('in-flight');
    const s = await acquiring;
    expect(released).toBe(true);
    expect(s.state).toBe('Destroyed');
    expect(pool.get('in-flight')).toBeUndefined();
  });
});
