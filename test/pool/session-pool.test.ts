import { afterEach, describe, expect, it, vi } from 'vitest';

import {
  ErrorCode,
  InvalidIdentifierError,
  InvalidOptionsError,
  PoolClosedError,
  PoolExhaustedError,
  SandpoolError,
  SessionBusyError,
  SessionNotFoundError,
  SessionPool,
  type SessionDestroyedEvent,
} from '../../src/index.js';
import { hostMemoryBudget } from '../../src/index.js';
import { FakeBackend } from '../helpers/fake-backend.js';

const pools: SessionPool[] = [];
function makePool(options: Partial<ConstructorParameters<typeof SessionPool>[0]> = {}, backend = new FakeBackend()) {
  const pool = new SessionPool({ backend, containerType: 'NodeLTS', readySessionInstances: 2, ...options });
  pools.push(pool);
  return { pool, backend };
}

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

describe('options', () => {
  it('names every problem in one InvalidOptionsError', () => {
    let error: unknown;
    try {
      new SessionPool({
        backend: new FakeBackend(),
        readySessionInstances: 10,
        maxConcurrentSessions: 5,
        cooldownPeriodInSeconds: -1,
        name: 'bad name!',
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidOptionsError);
    const message = (error as Error).message;
    expect(message).toContain('name');
    expect(message).toContain('cooldownPeriodInSeconds');
    expect((error as InvalidOptionsError).code).toBe('SANDPOOL_INVALID_OPTIONS');
  });

  it('rejects a backend that is not a backend, and unknown options', () => {
    expect(() => new SessionPool({ backend: {} as never })).toThrow(/must be a sandpool Backend/);
    expect(() => new SessionPool({ backend: new FakeBackend(), readySessions: 1 } as never)).toThrow(/readySessions/);
  });

  it('rejects cross-field mistakes: ready > max, a container type the backend cannot run', () => {
    expect(() => new SessionPool({ backend: new FakeBackend(), readySessionInstances: 3, maxConcurrentSessions: 2 })).toThrow(
      /must not exceed maxConcurrentSessions/,
    );
    expect(() => new SessionPool({ backend: new FakeBackend(), containerType: 'CustomContainer' })).toThrow(
      /cannot run CustomContainer/,
    );
  });

  it('accepts enum values in any letter case and applies Azure defaults', () => {
    const pool = new SessionPool({
      backend: new FakeBackend(),
      lifecycleType: 'timed' as never,
      containerType: 'nodelts' as never,
    });
    expect(pool.options.lifecycleType).toBe('Timed');
    expect(pool.options.containerType).toBe('NodeLTS');
    expect(pool.options.cooldownPeriodInSeconds).toBe(300);
    expect(pool.options.network.egress).toBe('EgressDisabled');
  });

  it('builds from an Azure properties object', () => {
    const pool = SessionPool.fromSessionPoolProperties(
      {
        containerType: 'NodeLTS',
        poolManagementType: 'Dynamic',
        scaleConfiguration: { maxConcurrentSessions: 7, readySessionInstances: 3 },
        dynamicPoolConfiguration: { lifecycleConfiguration: { lifecycleType: 'Timed', cooldownPeriodInSeconds: 600 } },
        sessionNetworkConfiguration: { status: 'EgressDisabled' },
      },
      { name: 'azure', backend: new FakeBackend() },
    );
    expect(pool.options).toMatchObject({
      name: 'azure',
      maxConcurrentSessions: 7,
      readySessionInstances: 3,
      cooldownPeriodInSeconds: 600,
    });
    expect(() =>
      SessionPool.fromSessionPoolProperties(
        { scaleConfiguration: { maxConcurrentSessions: 'many' } },
        { name: 'x', backend: new FakeBackend() },
      ),
    ).toThrow(/scaleConfiguration\.maxConcurrentSessions/);
  });
});

describe('allocation', () => {
  it('start() resolves with the ready set filled', async () => {
    const { pool } = makePool({ readySessionInstances: 3 });
    await pool.start();
    expect(pool.stats()).toMatchObject({ ready: 3, allocated: 0, pending: 0 });
  });

  it('is get-or-create: the same identifier reaches the same session; the pool refills', async () => {
    const { pool } = makePool();
    await pool.start();
    const a = await pool.acquire('user-1');
    const again = await pool.acquire('user-1');
    const b = await pool.acquire('user-2');
    expect(again).toBe(a);
    expect(b.id).not.toBe(a.id);
    expect(a.identifier).toBe('user-1');
    await vi.waitFor(() => expect(pool.stats().ready).toBe(2));
    expect(pool.stats()).toMatchObject({ allocated: 2, coldMisses: 0, allocations: 2 });
  });

  it('gives 100 concurrent acquires of one new identifier exactly one session', async () => {
    const { pool, backend } = makePool({ readySessionInstances: 0 });
    backend.createDelayMs = 5;
    const sessions = await Promise.all(Array.from({ length: 100 }, () => pool.acquire('same-id')));
    expect(new Set(sessions.map((s) => s.id)).size).toBe(1);
    expect(pool.stats().allocated).toBe(1);
  });

  it('validates identifiers with Azure rules', async () => {
    const { pool } = makePool();
    for (const bad of ['abc', 'x'.repeat(129), 'has space', 'slash/no', 'ünï', '', 42]) {
      await expect(pool.acquire(bad as string)).rejects.toBeInstanceOf(InvalidIdentifierError);
    }
    await expect(pool.acquire('|-&^%$#(){}[];<>')).resolves.toBeDefined();
    expect(SessionPool.generateIdentifier()).toMatch(/^[0-9a-f]{32}$/);
  });

  it('counts a cold miss when no session was Ready, and serves waiters in arrival order', async () => {
    const { pool, backend } = makePool({ readySessionInstances: 0, refillConcurrency: 1 });
    backend.createDelayMs = 10;
    const order: string[] = [];
    const ids = ['first', 'second', 'third'];
    await Promise.all(ids.map((id) => pool.acquire(id).then(() => order.push(id))));
    expect(order).toEqual(ids);
    expect(pool.stats()).toMatchObject({ coldMisses: 3, allocations: 3 });
    expect(pool.stats().coldMissRate).toBe(1);
  });

  it('rejects with PoolExhaustedError at maxConcurrentSessions, or waits when asked', async () => {
    const { pool } = makePool({ readySessionInstances: 1, maxConcurrentSessions: 2 });
    await pool.start();
    const exhausted = vi.fn();
    pool.on('poolExhausted', exhausted);
    const a = await pool.acquire('aaaa');
    await pool.acquire('bbbb');
    await expect(pool.acquire('cccc')).rejects.toBeInstanceOf(PoolExhaustedError);
    expect(exhausted).toHaveBeenCalledTimes(1);
    const waiting = pool.acquire('dddd', { wait: true });
    await a.stop();
    const d = await waiting;
    expect(d.identifier).toBe('dddd');
  });

  it('lets a waiting acquire be aborted or time out', async () => {
    const { pool } = makePool({ readySessionInstances: 0, maxConcurrentSessions: 1 });
    await pool.acquire('aaaa');
    const controller = new AbortController();
    const aborted = pool.acquire('bbbb', { wait: true, signal: controller.signal });
    controller.abort();
    await expect(aborted).rejects.toMatchObject({ code: ErrorCode.ABORTED });
    await expect(pool.acquire('cccc', { wait: true, timeoutMs: 20 })).rejects.toMatchObject({ code: ErrorCode.ACQUIRE_TIMEOUT });
    expect(pool.stats().waiting).toBe(0);
  });
});

describe('executions', () => {
  it('run in arrival order on one session, and a full queue rejects with SessionBusyError', async () => {
    const { pool, backend } = makePool({ limits: { maxQueuedExecutions: 2 } });
    const s = await pool.acquire('order');
    const runs = [s.execute({ code: 'sleep:20' }), s.execute({ code: 'one' }), s.execute({ code: 'two' })];
    await expect(s.execute({ code: 'three' })).rejects.toBeInstanceOf(SessionBusyError);
    await Promise.all(runs);
    expect(backend.executed).toEqual(['sleep:20', 'one', 'two']);
  });

  it('emits executionStarted/Finished with identifier and timings', async () => {
    const { pool } = makePool();
    const started = vi.fn();
    const finished = vi.fn();
    pool.on('executionStarted', started).on('executionFinished', finished);
    const s = await pool.acquire('events');
    const result = await s.execute({ code: 'hello' });
    expect(result).toMatchObject({ status: 'Succeeded', result: 'hello', sessionState: 'kept' });
    expect(started.mock.calls[0]![0]).toMatchObject({ identifier: 'events', language: 'javascript' });
    expect(finished.mock.calls[0]![0]).toMatchObject({ identifier: 'events', status: 'Succeeded', timedOut: false });
  });

  it('replaces a session the backend lost, failing only that execution', async () => {
    const { pool } = makePool();
    const destroyed: SessionDestroyedEvent[] = [];
    pool.on('sessionDestroyed', (e) => destroyed.push(e));
    const s = await pool.acquire('crashy');
    const died = await s.execute({ code: 'throw' });
    expect(died).toMatchObject({ status: 'Failed', sessionState: 'replaced' });
    expect(died.stderr).toMatch(/session was lost/);
    await expect(s.execute({ code: 'x' })).rejects.toBeInstanceOf(SessionNotFoundError);
    expect(destroyed[0]).toMatchObject({ reason: 'failed', identifier: 'crashy' });
    const fresh = await pool.acquire('crashy');
    expect(fresh.id).not.toBe(s.id);
    const lost = await fresh.execute({ code: 'lose' });
    expect(lost.sessionState).toBe('replaced');
    expect(pool.get('crashy')).toBeUndefined();
  });

  it('rejects bad requests with a typed error', async () => {
    const { pool } = makePool();
    const s = await pool.acquire('badreq');
    await expect(s.execute({ code: 42 as never })).rejects.toMatchObject({ code: ErrorCode.INVALID_REQUEST });
    await expect(s.execute({ code: '1', timeoutInSeconds: -1 })).rejects.toMatchObject({ code: ErrorCode.INVALID_REQUEST });
    await expect(s.execute({ code: '1', argv: ['ls'] })).rejects.toMatchObject({ code: ErrorCode.INVALID_REQUEST });
    await expect(s.uploadFile('a.txt', 'x')).rejects.toMatchObject({ code: ErrorCode.UNSUPPORTED });
  });
});

describe('lifecycle timers', () => {
  it('destroys an idle session after the cooldown, never while it runs code', async () => {
    vi.useFakeTimers();
    const { pool } = makePool({ cooldownPeriodInSeconds: 10 });
    const destroyed = vi.fn();
    pool.on('sessionDestroyed', destroyed);
    const s = await pool.acquire('cool');
    const run = s.execute({ code: 'sleep:15000' });
    await vi.advanceTimersByTimeAsync(12_000);
    expect(s.state).toBe('Allocated');
    await vi.advanceTimersByTimeAsync(3_000);
    await run;
    expect(s.info().expiresAt!.getTime()).toBeGreaterThan(Date.now() + 9_000);
    await vi.advanceTimersByTimeAsync(9_000);
    expect(s.state).toBe('Allocated');
    await vi.advanceTimersByTimeAsync(1_001);
    expect(s.state).toBe('Destroyed');
    expect(destroyed).toHaveBeenCalledWith(expect.objectContaining({ reason: 'cooldown', identifier: 'cool' }));
  });

  it('ends a session at maxAlive whatever its activity, after its running execution', async () => {
    vi.useFakeTimers();
    const { pool } = makePool({ lifecycleType: 'OnContainerExit', maxAlivePeriodInSeconds: 5 });
    const s = await pool.acquire('alive');
    const run = s.execute({ code: 'sleep:7000' });
    await vi.advanceTimersByTimeAsync(6_000);
    expect(s.state).toBe('Allocated');
    await vi.advanceTimersByTimeAsync(1_000);
    await run;
    await vi.advanceTimersByTimeAsync(0);
    expect(s.state).toBe('Destroyed');
    expect(pool.stats().destroyed.maxAlive).toBe(1);
  });

  it('destroys a session whose process exits, with reason exited', async () => {
    const { pool, backend } = makePool();
    const s = await pool.acquire('exits');
    backend.kill(s.id);
    expect(s.state).toBe('Destroyed');
    expect(pool.stats().destroyed.exited).toBe(1);
  });
});

describe('backend failures', () => {
  it('reports create failures, rejects waiters instead of hanging, backs off and recovers', async () => {
    const { pool, backend } = makePool({ readySessionInstances: 0 });
    const errors = vi.fn();
    pool.on('error', errors);
    backend.failCreates = 1;
    await expect(pool.acquire('down')).rejects.toMatchObject({ code: ErrorCode.BACKEND_FAILED });
    expect(errors).toHaveBeenCalledWith(expect.objectContaining({ operation: 'create', retryInMs: expect.any(Number) }));
    expect(pool.stats().lastError?.message).toMatch(/engine is down/);
    await new Promise((r) => setTimeout(r, 150));
    await expect(pool.acquire('down')).resolves.toBeDefined();
  });

  it('start() rejects when the backend cannot create sessions', async () => {
    const { pool, backend } = makePool();
    backend.failCreates = 100;
    await expect(pool.start()).rejects.toBeInstanceOf(SandpoolError);
  });
});

describe('close', () => {
  it('waits for in-flight executions, destroys everything, closes the backend', async () => {
    const { pool, backend } = makePool();
    await pool.start();
    const s = await pool.acquire('closing');
    const run = s.execute({ code: 'sleep:50' });
    await pool.close();
    await expect(run).resolves.toMatchObject({ status: 'Succeeded' });
    expect(backend.live.size).toBe(0);
    expect(backend.closed).toBe(true);
    // The allocated one and the other Ready one: the replacement waited for the execution to
    // settle (refill stays off the caller's path) and close() came first.
    expect(pool.stats().destroyed.poolClosed).toBe(2);
    await expect(pool.acquire('closing')).rejects.toBeInstanceOf(PoolClosedError);
    expect(pool.close()).toBe(pool.close());
  });

  it('rejects waiting acquires and releases sessions still being created', async () => {
    const { pool, backend } = makePool({ readySessionInstances: 0 });
    backend.createDelayMs = 50;
    const waiting = pool.acquire('never');
    await new Promise((r) => setTimeout(r, 5));
    await pool.close();
    await expect(waiting).rejects.toBeInstanceOf(PoolClosedError);
    expect(backend.live.size).toBe(0);
    expect(pool.stats()).toMatchObject({ pending: 0, ready: 0, allocated: 0 });
  });

  it('supports await using', async () => {
    const backend = new FakeBackend();
    {
      await using pool = new SessionPool({ backend, readySessionInstances: 1 });
      await pool.start();
    }
    expect(backend.closed).toBe(true);
    expect(backend.live.size).toBe(0);
  });
});

describe('update', () => {
  it('changes scale settings of a running pool', async () => {
    const { pool } = makePool({ readySessionInstances: 1 });
    await pool.start();
    pool.update({ readySessionInstances: 3 });
    await vi.waitFor(() => expect(pool.stats().ready).toBe(3));
    pool.update({ readySessionInstances: 1 });
    expect(pool.stats().ready).toBe(1);
    expect(() => pool.update({ readySessionInstances: 1000 })).toThrow(InvalidOptionsError);
  });
});

describe('bursts', () => {
  it('grows the ready set with the arrival rate under adaptiveReady, within its budget', async () => {
    const { pool } = makePool({
      readySessionInstances: 1,
      maxConcurrentSessions: 200,
      adaptiveReady: { coverSeconds: 1, maxReadySessionInstances: 8, windowSeconds: 1 },
    });
    await pool.start();
    expect(pool.stats().readyTarget).toBe(1);
    await Promise.all(Array.from({ length: 30 }, (_, i) => pool.acquire(`burst-${i}`, { wait: true })));
    const stats = pool.stats();
    expect(stats.arrivalsPerSecond).toBe(30);
    expect(stats.readyTarget).toBe(8);
    await vi.waitFor(() => expect(pool.stats().ready).toBe(8));
  });

  it('reports per-allocation timings: allocation, queue, create and first execution', async () => {
    const { pool, backend } = makePool({ readySessionInstances: 0 });
    backend.createDelayMs = 20;
    const s = await pool.acquire('timed-1');
    await s.execute({ code: 'sleep:5' });
    await s.execute({ code: 'again' });
    const { timings } = pool.stats();
    expect(timings.allocationMs.count).toBe(1);
    expect(timings.queueMs.p50).toBeGreaterThanOrEqual(15);
    expect(timings.createMs.p50).toBeGreaterThanOrEqual(15);
    expect(timings.firstExecutionMs.count).toBe(1);
    expect(timings.firstExecutionMs.max).toBeGreaterThanOrEqual(4);
  });

  it('serves a burst of 100 new identifiers against 10 ready sessions without failures', async () => {
    const { pool } = makePool({ readySessionInstances: 10, maxConcurrentSessions: 100, refillConcurrency: 8 });
    await pool.start();
    const results = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => pool.acquire(`id-${i}-x`)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(100);
    expect(pool.stats().coldMisses).toBe(90);
  });
});

describe('host memory budget', () => {
  it('caps out-of-process sessions across pools by host memory, and frees room on destroy', async () => {
    const capacity = hostMemoryBudget.capacityMb;
    hostMemoryBudget.setCapacityMb(hostMemoryBudget.reservedMb + 1024);
    try {
      const outOfProcess = () =>
        Object.assign(new FakeBackend(), { capabilities: { ...new FakeBackend().capabilities, inProcess: false } });
      const a = makePool({ readySessionInstances: 0, limits: { memoryMb: 512 } }, outOfProcess()).pool;
      const b = makePool({ readySessionInstances: 0, limits: { memoryMb: 512 } }, outOfProcess()).pool;
      const first = await a.acquire('aaaa');
      await b.acquire('bbbb');
      await expect(a.acquire('cccc')).rejects.toThrow(/host memory budget/);
      const waiting = b.acquire('dddd', { wait: true });
      await first.stop();
      await expect(waiting).resolves.toMatchObject({ identifier: 'dddd' });
    } finally {
      hostMemoryBudget.setCapacityMb(capacity);
    }
  });
});
