/**
 * Refill work stays off the caller's path: a replacement is created after the caller got its
 * session and after its executions settled (or after a short bound when they never do), while a
 * caller who waits for a session still gets one created at once. And pool.stats().refill counts
 * only the replacements, not the initial fill.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';

import { MAX_REFILL_DEFER_MS, RefillScheduler } from '../../src/pool/refill-scheduler.js';
import { SessionPool } from '../../src/session-pool.js';
import { FakeBackend } from '../helpers/fake-backend.js';

const pools: SessionPool[] = [];
function makePool(options: Partial<ConstructorParameters<typeof SessionPool>[0]> = {}) {
  const backend = new FakeBackend();
  const pool = new SessionPool({ backend, containerType: 'NodeLTS', readySessionInstances: 2, ...options });
  pools.push(pool);
  return { pool, backend };
}

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

describe('refill off the caller path', () => {
  it('creates the replacement only after the caller got its session and its execution settled', async () => {
    const { pool, backend } = makePool();
    await pool.start();
    expect(backend.creates).toBe(2);
    const session = await pool.acquire('caller');
    // The caller holds its session and nothing was created on the way.
    expect(backend.creates).toBe(2);
    const running = session.execute({ code: 'sleep:20' });
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 5));
    expect(backend.creates).toBe(2); // still running: the refill waits
    await running;
    await vi.waitFor(() => expect(pool.stats().ready).toBe(2));
    expect(backend.creates).toBe(3);
  });

  it('still refills, within a bound, a pool whose executions never settle', async () => {
    const { pool, backend } = makePool();
    await pool.start();
    const session = await pool.acquire('busy');
    const running = session.execute({ code: `sleep:${MAX_REFILL_DEFER_MS * 10}` });
    await vi.waitFor(() => expect(pool.stats().ready).toBe(2), { timeout: MAX_REFILL_DEFER_MS * 8 });
    expect(backend.creates).toBe(3);
    expect(session.executionsInFlight).toBe(1);
    await running;
  });

  it('creates at once for an acquire that waits for a session', async () => {
    const { pool, backend } = makePool({ readySessionInstances: 0 });
    await pool.start();
    const acquiring = pool.acquire('cold', { wait: true });
    // Synchronously requested: the cold miss is the caller's path.
    await Promise.resolve();
    expect(backend.creates).toBe(1);
    await acquiring;
    expect(pool.stats().coldMisses).toBe(1);
  });

  it('reports the refill rate and creation timings of replacements only', async () => {
    const { pool, backend } = makePool({ readySessionInstances: 3 });
    backend.createDelayMs = 5;
    await pool.start();
    expect(pool.stats().refill).toMatchObject({ created: 0, sessionsPerSecond: 0, createMs: { count: 0 } });
    await Promise.all(['user-a', 'user-b'].map((id) => pool.acquire(id)));
    await vi.waitFor(() => expect(pool.stats().ready).toBe(3));
    const { refill, timings, created } = pool.stats();
    expect(created).toBe(5);
    expect(timings.createMs.count).toBe(5);
    expect(refill.created).toBe(2);
    expect(refill.createMs.count).toBe(2);
    expect(refill.createMs.p50).toBeGreaterThanOrEqual(4);
    expect(refill.sessionsPerSecond).toBeGreaterThan(0);
    // Two 5 ms creations at once: never faster than the sessions could possibly be made.
    expect(refill.sessionsPerSecond).toBeLessThanOrEqual(2 / 0.004);
  });
});

describe('RefillScheduler', () => {
  it('starts one creation per turn, after the current turn, and stops once nothing more is wanted', async () => {
    let wanted = 3;
    const turns: number[] = [];
    let turn = 0;
    const scheduler = new RefillScheduler({
      createOne: () => {
        if (wanted === 0) return false;
        wanted -= 1;
        turns.push(turn);
        return true;
      },
      busy: () => false,
      urgent: () => false,
    });
    scheduler.request();
    scheduler.request(); // coalesced
    expect(turns).toEqual([]);
    for (turn = 1; turn <= 5; turn += 1) await new Promise((r) => setImmediate(r));
    expect(turns).toHaveLength(3);
    expect(new Set(turns).size).toBe(3);
    scheduler.close();
  });

  it('waits while busy until idle() and creates nothing after close()', async () => {
    let busy = true;
    let created = 0;
    const scheduler = new RefillScheduler(
      {
        createOne: () => {
          created += 1;
          return false;
        },
        busy: () => busy,
        urgent: () => false,
      },
      10_000,
    );
    scheduler.request();
    await new Promise((r) => setTimeout(r, 20));
    expect(created).toBe(0);
    busy = false;
    scheduler.idle();
    await vi.waitFor(() => expect(created).toBe(1));
    scheduler.request();
    scheduler.close();
    await new Promise((r) => setTimeout(r, 5));
    expect(created).toBe(1);
  });
});
