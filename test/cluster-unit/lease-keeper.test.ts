/**
 * LeaseKeeper against scripted lease operations (no etcd): it fences before the lease can expire,
 * counted from when the last successful keep-alive was sent; it recovers the same lease when
 * renewals come back before that; and it declares the lease lost at the bound and takes a new one.
 * The bounds are checked to the millisecond on a fake clock: on a real one a busy machine delays
 * timers by hundreds of milliseconds, which says nothing about the keeper.
 */

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { LeaseKeeper } from '../../src/cluster/lease-keeper.js';
import type { LeaseOperations } from '../../src/cluster/ownership-store.js';

class ScriptedLeases implements LeaseOperations {
  reachable = true;
  /** Leases the "store" considers expired. */
  readonly expired = new Set<string>();
  readonly revoked: string[] = [];
  #next = 1;
  lastSentAt = 0;

  async grant(): Promise<string> {
    if (!this.reachable) throw new Error('unreachable');
    return String(this.#next++);
  }

  async keepAlive(lease: string): Promise<'alive' | 'expired'> {
    const sentAt = performance.now();
    await new Promise((r) => setTimeout(r, 5));
    if (!this.reachable) throw new Error('unreachable');
    this.lastSentAt = sentAt;
    return this.expired.has(lease) ? 'expired' : 'alive';
  }

  async revoke(lease: string): Promise<void> {
    this.revoked.push(lease);
  }
}

function next<T extends 'serving' | 'fenced' | 'lost'>(keeper: LeaseKeeper, event: T): Promise<{ lease: string; at: number }> {
  return new Promise((resolve) => keeper.once(event, (lease: string) => resolve({ lease, at: performance.now() })));
}

describe('LeaseKeeper', () => {
  describe('on a fake clock (timers and performance.now), so CPU load cannot move a bound', () => {
    beforeEach(() => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    });
    afterEach(() => {
      vi.restoreAllMocks();
      vi.useRealTimers();
    });

    it('fences a margin before the lease can expire, then loses it at the bound and takes a new one', async () => {
      const ops = new ScriptedLeases();
      const keeper = new LeaseKeeper(ops, { ttlSeconds: 1, renewEveryMs: 100, fenceMarginMs: 400 });
      const events: { event: string; lease: string; at: number }[] = [];
      for (const event of ['serving', 'fenced', 'lost'] as const)
        keeper.on(event, (lease) => events.push({ event, lease, at: performance.now() }));
      const startedAt = performance.now();
      keeper.start();
      await vi.advanceTimersByTimeAsync(0);
      expect(events).toEqual([{ event: 'serving', lease: '1', at: startedAt }]);
      expect(keeper.serving).toBe(true);
      // A renewal 100 ms after each answer (answered 5 ms after it was sent: sent at 100 and 205),
      // then the store is out of reach.
      await vi.advanceTimersByTimeAsync(250);
      const lastSent = ops.lastSentAt;
      expect(lastSent).toBe(startedAt + 205);
      ops.reachable = false;
      const fenceAt = lastSent + 1000 - 400;
      const boundAt = lastSent + 1000;
      // Serving right up to last-sent + TTL − margin, fenced exactly then.
      await vi.advanceTimersByTimeAsync(fenceAt - 1 - performance.now());
      expect(keeper.serving).toBe(true);
      expect(keeper.state).toBe('serving');
      await vi.advanceTimersByTimeAsync(1);
      expect(keeper.serving).toBe(false);
      expect(keeper.state).toBe('fenced');
      // Still the same lease (renewals may come back) until the bound, lost exactly at it.
      await vi.advanceTimersByTimeAsync(boundAt - 1 - performance.now());
      expect(keeper.state).toBe('fenced');
      expect(keeper.lease).toBe('1');
      await vi.advanceTimersByTimeAsync(1);
      expect(keeper.state).toBe('none');
      expect(events.slice(1)).toEqual([
        { event: 'fenced', lease: '1', at: fenceAt },
        { event: 'lost', lease: '1', at: boundAt },
      ]);
      expect(ops.revoked).toContain('1');
      // It keeps asking for a new lease while the store is away, and serves one once it is back.
      await vi.advanceTimersByTimeAsync(3000);
      expect(keeper.state).toBe('none');
      ops.reachable = true;
      await vi.advanceTimersByTimeAsync(4000);
      expect(events.at(-1)).toMatchObject({ event: 'serving', lease: '2' });
      expect(keeper.serving).toBe(true);
      await keeper.stop({ revoke: true });
      expect(ops.revoked).toContain('2');
    });

    it('serves the same lease again when renewals resume before the bound', async () => {
      const ops = new ScriptedLeases();
      const keeper = new LeaseKeeper(ops, { ttlSeconds: 1, renewEveryMs: 100, fenceMarginMs: 400 });
      const events: string[] = [];
      for (const event of ['serving', 'fenced', 'lost'] as const) keeper.on(event, (lease) => events.push(`${event} ${lease}`));
      keeper.start();
      await vi.advanceTimersByTimeAsync(0);
      ops.reachable = false;
      await vi.advanceTimersByTimeAsync(600);
      expect(events).toEqual(['serving 1', 'fenced 1']);
      ops.reachable = true;
      // The next renewal (at most a renewal period later) is answered: the same lease serves again.
      await vi.advanceTimersByTimeAsync(110);
      expect(events).toEqual(['serving 1', 'fenced 1', 'serving 1']);
      expect(keeper.serving).toBe(true);
      await keeper.stop({ revoke: false });
      expect(ops.revoked).toEqual([]);
    });

    it('answers serving from the clock, even when the fence timer has not run yet (a busy event loop)', async () => {
      const ops = new ScriptedLeases();
      const keeper = new LeaseKeeper(ops, { ttlSeconds: 1, renewEveryMs: 100, fenceMarginMs: 400 });
      keeper.start();
      await vi.advanceTimersByTimeAsync(0);
      const grantedAt = performance.now();
      ops.reachable = false;
      // The clock moves on without any timer running, as it does while the event loop is blocked.
      const now = vi.spyOn(performance, 'now');
      now.mockReturnValue(grantedAt + 599);
      expect(keeper.serving).toBe(true);
      now.mockReturnValue(grantedAt + 600);
      expect(keeper.state).toBe('serving');
      expect(keeper.serving).toBe(false);
      now.mockRestore();
      await keeper.stop({ revoke: false });
    });
  });

  it('drops a lease the store reports expired at once', async () => {
    const ops = new ScriptedLeases();
    const keeper = new LeaseKeeper(ops, { ttlSeconds: 10, renewEveryMs: 50 });
    const first = next(keeper, 'serving');
    keeper.start();
    await first;
    const lost = next(keeper, 'lost');
    ops.expired.add('1');
    expect((await lost).lease).toBe('1');
    const again = await next(keeper, 'serving');
    expect(again.lease).toBe('2');
    await keeper.stop({ revoke: true });
  });

  it('refuses a margin that leaves no room for a keep-alive', () => {
    expect(() => new LeaseKeeper(new ScriptedLeases(), { ttlSeconds: 1, renewEveryMs: 500, fenceMarginMs: 600 })).toThrow(
      RangeError,
    );
  });
});
