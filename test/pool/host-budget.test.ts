/**
 * The host memory budget in both modes, with the host's available memory faked: measured mode
 * admits sessions while available memory minus what is being created stays above the floor (a
 * Ready session's real use is what MemAvailable shows), reserved mode counts every live session's
 * full limit. And pools waiting on memory look again when memory comes back by itself.
 */
import { afterEach, describe, expect, it } from 'vitest';

import { HostMemoryBudget, hostMemoryBudget } from '../../src/pool/host-budget.js';
import { SessionPool } from '../../src/session-pool.js';
import { FakeBackend } from '../helpers/fake-backend.js';

describe('HostMemoryBudget', () => {
  it('measured: admits by available memory above the floor, counting only sessions being created', () => {
    let available = 3000;
    const budget = new HostMemoryBudget(10_000, { mode: 'measured', floorMb: 1000, available: () => available });
    expect(budget.room(256)).toBe(7); // (3000 - 1000) / 256
    budget.reserve(256);
    budget.reserve(256);
    expect(budget.room(256)).toBe(5);
    budget.settle(256); // Ready: its real use shows in MemAvailable from now on
    available = 2990;
    expect(budget.room(256)).toBe(6);
    budget.release(256, true); // a Ready session ends: nothing was reserved for it any more
    budget.release(256, false); // a creation fails
    expect(budget.reservedMb).toBe(0);
    available = 1100;
    expect(budget.room(256)).toBe(0);
    expect(budget.describe()).toMatch(/available memory \(1100 MiB.*1000 MiB kept free/);
  });

  it('reserved: every live session keeps its full limit until it ends', () => {
    const budget = new HostMemoryBudget(1024, { mode: 'reserved', available: () => 1_000_000 });
    budget.reserve(512);
    budget.settle(512);
    budget.reserve(512);
    expect(budget.room(512)).toBe(0);
    expect(budget.describe()).toMatch(/1024 of 1024 MiB reserved/);
    budget.release(512, true);
    expect(budget.room(512)).toBe(1);
  });

  it('switches modes, and refuses measured mode where memory cannot be measured', () => {
    const budget = new HostMemoryBudget(1024, { mode: 'measured', floorMb: 0, available: () => 100_000 });
    budget.setCapacityMb(2048);
    expect(budget.mode).toBe('reserved');
    budget.useMeasured(500);
    expect(budget).toMatchObject({ mode: 'measured', floorMb: 500 });
    expect(() => new HostMemoryBudget(1, { available: () => undefined }).useMeasured()).toThrow(RangeError);
    expect(new HostMemoryBudget(1, { available: () => undefined }).mode).toBe('reserved');
  });

  it('wakes waiting listeners when memory comes back without any release', async () => {
    let available = 1000;
    const budget = new HostMemoryBudget(0, { mode: 'measured', floorMb: 1000, available: () => available });
    let calls = 0;
    const unsubscribe = budget.subscribe(() => {
      calls += 1;
    });
    try {
      expect(budget.room(256)).toBe(0);
      available = 2000;
      await new Promise((r) => setTimeout(r, 1200));
      expect(calls).toBeGreaterThanOrEqual(1);
      expect(budget.room(256)).toBe(3);
    } finally {
      unsubscribe();
    }
  });
});

describe('a pool on the measured budget', () => {
  const pools: SessionPool[] = [];
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close()));
  });

  it('holds more sessions than their limits could ever reserve, since only creations in flight count', async () => {
    const { mode, floorMb, capacityMb } = hostMemoryBudget;
    hostMemoryBudget.useMeasured(0);
    try {
      // 24 sessions of 2 GiB each: 48 GiB of limits, more than this host's RAM; reserved mode would
      // stop far below. Their real use (a fake backend's: nothing) is what counts.
      const backend = Object.assign(new FakeBackend(), { capabilities: { ...new FakeBackend().capabilities, inProcess: false } });
      const pool = new SessionPool({
        backend,
        containerType: 'NodeLTS',
        readySessionInstances: 24,
        maxConcurrentSessions: 40,
        refillConcurrency: 1,
        limits: { memoryMb: 2048 },
      });
      pools.push(pool);
      // One creation at a time needs only its 2 GiB free above a floor of 0.
      await pool.start();
      expect(pool.stats().ready).toBe(24);
      expect(hostMemoryBudget.reservedMb).toBeGreaterThanOrEqual(24 * 2048);
      expect(hostMemoryBudget.reservedMb).toBeGreaterThan((await import('node:os')).totalmem() / 2 ** 20);
    } finally {
      if (mode === 'reserved') hostMemoryBudget.setCapacityMb(capacityMb);
      else hostMemoryBudget.useMeasured(floorMb);
    }
  });
});
