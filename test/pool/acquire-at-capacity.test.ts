/**
 * An acquire of a new identifier at the pool's capacity is answered at once: it either has a
 * creation on the way (in flight or still within maxConcurrentSessions and the host memory budget)
 * that no acquire queued ahead of it has claimed, or it gets PoolExhaustedError with a truthful
 * `retryAfterMs` (when the soonest slot frees). Only `{ wait: true }` waits for a slot to free,
 * bounded by its `timeoutMs` or `signal`. The clock is fake: a request that "hangs" would wait for
 * an unrelated session's 300 s cooldown.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';

import { ErrorCode, hostMemoryBudget, PoolExhaustedError, SessionPool, type Session } from '../../src/index.js';
import { FakeBackend } from '../helpers/fake-backend.js';

const CREATE_MS = 1_000;
const COOLDOWN_S = 300;

const pools: SessionPool[] = [];
function makePool(options: Partial<ConstructorParameters<typeof SessionPool>[0]> = {}, backend = new FakeBackend()) {
  backend.createDelayMs = CREATE_MS;
  // The built-in python pool: 2 ready, at most 20 live, the default refill concurrency (4).
  const pool = new SessionPool({
    backend,
    containerType: 'PythonLTS',
    readySessionInstances: 2,
    maxConcurrentSessions: 20,
    cooldownPeriodInSeconds: COOLDOWN_S,
    ...options,
  });
  pools.push(pool);
  return { pool, backend };
}

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

type Outcome = { ok: true; session: Session } | { ok: false; error: unknown };
/** Track each acquire's outcome without awaiting it (so the fake clock can be advanced meanwhile). */
function track(promises: Promise<Session>[]): (Outcome | undefined)[] {
  const outcomes: (Outcome | undefined)[] = promises.map(() => undefined);
  for (const [i, p] of promises.entries()) {
    p.then(
      (session) => {
        outcomes[i] = { ok: true, session };
      },
      (error: unknown) => {
        outcomes[i] = { ok: false, error };
      },
    );
  }
  return outcomes;
}

/** A started pool with `live` identifiers holding sessions and the ready set refilled. */
async function poolWithLiveSessions(live: number, options: Partial<ConstructorParameters<typeof SessionPool>[0]> = {}) {
  const made = makePool(options);
  // Creations start one per event-loop turn, and the fake clock moves 1 ms per nested turn.
  const started = made.pool.start();
  await vi.advanceTimersByTimeAsync(CREATE_MS + 100);
  await started;
  for (let i = 0; i < live; i += 1) {
    const acquired = made.pool.acquire(`held-${i}`);
    await vi.advanceTimersByTimeAsync(CREATE_MS + 100);
    await acquired;
  }
  await vi.advanceTimersByTimeAsync(CREATE_MS * 2);
  return made;
}

describe('a burst of new identifiers against a nearly full pool', () => {
  for (const live of [2, 4, 6]) {
    it(`with ${live} sessions live, answers all 20 new identifiers at once: a session or PoolExhaustedError`, async () => {
      vi.useFakeTimers();
      const { pool } = await poolWithLiveSessions(live);
      expect(pool.stats()).toMatchObject({ allocated: live, ready: 2, pending: 0 });
      const burstAt = Date.now();
      const outcomes = track(Array.from({ length: 20 }, (_, i) => pool.acquire(`burst-${i}`)));
      // Rejections come at once, before any creation could finish.
      await vi.advanceTimersByTimeAsync(0);
      expect(outcomes.filter((o) => o?.ok === false)).toHaveLength(live);
      // Every creation the accepted ones wait for finishes well within a few creation times.
      await vi.advanceTimersByTimeAsync(CREATE_MS * 6);
      expect(outcomes.filter((o) => o === undefined)).toHaveLength(0);
      expect(outcomes.filter((o) => o?.ok === true)).toHaveLength(20 - live);
      expect(pool.stats()).toMatchObject({ waiting: 0, pending: 0, allocated: 20 });
      for (const outcome of outcomes.filter((o) => o?.ok === false)) {
        const error = (outcome as { error: unknown }).error;
        expect(error).toBeInstanceOf(PoolExhaustedError);
        // The soonest slot frees when the first held session's cooldown runs out.
        const retryAfterMs = (error as PoolExhaustedError).retryAfterMs!;
        const firstExpiry = pool.sessions().reduce((soonest, s) => Math.min(soonest, s.expiresAt!.getTime()), Infinity);
        expect(retryAfterMs).toBe(firstExpiry - burstAt);
        expect(retryAfterMs).toBeGreaterThan((COOLDOWN_S - 10) * 1000);
        expect(retryAfterMs).toBeLessThanOrEqual(COOLDOWN_S * 1000);
      }
    });
  }

  it('tells the truth in retryAfterMs: still full just before it, a slot free at it', async () => {
    vi.useFakeTimers();
    const { pool } = await poolWithLiveSessions(2, { readySessionInstances: 0, maxConcurrentSessions: 2 });
    const refused = await pool.acquire('late').catch((error: PoolExhaustedError) => error);
    expect(refused).toBeInstanceOf(PoolExhaustedError);
    const retryAfterMs = (refused as PoolExhaustedError).retryAfterMs!;
    await vi.advanceTimersByTimeAsync(retryAfterMs - 1_000);
    await expect(pool.acquire('late')).rejects.toBeInstanceOf(PoolExhaustedError);
    await vi.advanceTimersByTimeAsync(1_000);
    const acquired = pool.acquire('late');
    await vi.advanceTimersByTimeAsync(CREATE_MS);
    await expect(acquired).resolves.toMatchObject({ identifier: 'late' });
  });

  it('counts waiters that asked to wait: the next acquire is refused with the slot after theirs', async () => {
    vi.useFakeTimers();
    const { pool } = await poolWithLiveSessions(0, { readySessionInstances: 0, maxConcurrentSessions: 2 });
    const first = pool.acquire('first');
    await vi.advanceTimersByTimeAsync(10_000);
    const second = pool.acquire('second');
    await vi.advanceTimersByTimeAsync(CREATE_MS + 100);
    await Promise.all([first, second]);
    const waiting = track([pool.acquire('patient', { wait: true, timeoutMs: 600_000 })]);
    await vi.advanceTimersByTimeAsync(0);
    expect(waiting[0]).toBeUndefined();
    const refused = await pool.acquire('impatient').catch((error: PoolExhaustedError) => error);
    expect(refused).toBeInstanceOf(PoolExhaustedError);
    // 'patient' takes the slot 'first' frees; 'impatient' can have the one 'second' frees.
    const [, secondExpiry] = pool
      .sessions()
      .map((s) => s.expiresAt!.getTime())
      .sort((a, b) => a - b);
    expect((refused as PoolExhaustedError).retryAfterMs).toBe(secondExpiry! - Date.now());
    expect(pool.stats().waiting).toBe(1);
    await vi.advanceTimersByTimeAsync(COOLDOWN_S * 1000);
    expect(waiting[0]).toMatchObject({ ok: true });
  });

  it('bounds a wait with timeoutMs', async () => {
    vi.useFakeTimers();
    const { pool } = await poolWithLiveSessions(1, { readySessionInstances: 0, maxConcurrentSessions: 1 });
    const waiting = track([pool.acquire('patient', { wait: true, timeoutMs: 5_000 })]);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(waiting[0]).toMatchObject({ ok: false, error: { code: ErrorCode.ACQUIRE_TIMEOUT } });
    expect(pool.stats().waiting).toBe(0);
  });

  it('gives back what a waiter that gave up had claimed', async () => {
    vi.useFakeTimers();
    const { pool } = await poolWithLiveSessions(1, { readySessionInstances: 0, maxConcurrentSessions: 2 });
    const controller = new AbortController();
    const leaving = track([pool.acquire('leaving', { signal: controller.signal })]);
    await expect(pool.acquire('refused')).rejects.toBeInstanceOf(PoolExhaustedError);
    controller.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(leaving[0]).toMatchObject({ ok: false, error: { code: ErrorCode.ABORTED } });
    // The creation 'leaving' claimed is still on the way, and now unclaimed.
    const taker = track([pool.acquire('taker')]);
    await vi.advanceTimersByTimeAsync(CREATE_MS);
    expect(taker[0]).toMatchObject({ ok: true });
  });

  it('refuses at once, rather than queueing, the waiters a failed creation can no longer serve', async () => {
    vi.useFakeTimers();
    const { pool, backend } = await poolWithLiveSessions(0, { readySessionInstances: 0, refillConcurrency: 1 });
    backend.failCreates = 1;
    pool.on('error', () => {});
    const outcomes = track([pool.acquire('aaaa'), pool.acquire('bbbb')]);
    await vi.advanceTimersByTimeAsync(CREATE_MS);
    // Neither waits for the backoff to end: both get the failure now.
    expect(outcomes).toMatchObject([
      { ok: false, error: { code: ErrorCode.BACKEND_FAILED } },
      { ok: false, error: { code: ErrorCode.BACKEND_FAILED } },
    ]);
    expect(pool.stats().waiting).toBe(0);
  });
});

describe('a host memory budget taken by another pool meanwhile', () => {
  it('refuses the waiters no creation can serve any more; a waiter that asked to wait keeps waiting', async () => {
    vi.useFakeTimers();
    const capacity = hostMemoryBudget.capacityMb;
    hostMemoryBudget.setCapacityMb(hostMemoryBudget.reservedMb + 3 * 512);
    try {
      const outOfProcess = () =>
        Object.assign(new FakeBackend(), { capabilities: { ...new FakeBackend().capabilities, inProcess: false } });
      const options = { readySessionInstances: 0, limits: { memoryMb: 512 } };
      const a = makePool({ ...options, refillConcurrency: 1 }, outOfProcess()).pool;
      const b = makePool({ ...options, refillConcurrency: 2 }, outOfProcess()).pool;
      // 'a' may create three sessions, one at a time: three waiters are accepted.
      const outcomes = track([a.acquire('a-one'), a.acquire('a-two', { wait: true }), a.acquire('a-three')]);
      // Meanwhile 'b' takes the budget the later two counted on.
      const taken = track([b.acquire('b-one'), b.acquire('b-two')]);
      await vi.advanceTimersByTimeAsync(CREATE_MS * 3);
      expect(taken).toMatchObject([{ ok: true }, { ok: true }]);
      expect(outcomes[0]).toMatchObject({ ok: true });
      expect(outcomes[1]).toBeUndefined();
      expect(outcomes[2]).toMatchObject({ ok: false });
      expect((outcomes[2] as { error: unknown }).error).toBeInstanceOf(PoolExhaustedError);
      expect(a.stats().waiting).toBe(1);
      await (taken[0] as { session: Session }).session.stop();
      await vi.advanceTimersByTimeAsync(CREATE_MS);
      expect(outcomes[1]).toMatchObject({ ok: true });
    } finally {
      hostMemoryBudget.setCapacityMb(capacity);
    }
  });
});
