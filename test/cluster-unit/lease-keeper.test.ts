/**
 * LeaseKeeper against scripted lease operations (no etcd): it fences before the lease can expire,
 * counted from when the last successful keep-alive was sent; it recovers the same lease when
 * renewals come back before that; and it declares the lease lost at the bound and takes a new one.
 */

import { describe, expect, it } from 'vitest';

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
  it('fences a margin before the lease can expire, then loses it at the bound and takes a new one', async () => {
    const ops = new ScriptedLeases();
    const keeper = new LeaseKeeper(ops, { ttlSeconds: 1, renewEveryMs: 100, fenceMarginMs: 400 });
    const first = next(keeper, 'serving');
    keeper.start();
    expect((await first).lease).toBe('1');
    expect(keeper.serving).toBe(true);
    await new Promise((r) => setTimeout(r, 250));
    ops.reachable = false;
    const cutAt = performance.now();
    const fencedEvent = next(keeper, 'fenced');
    // The serving check reads the clock itself: past last-sent + TTL − margin it is false, whether or
    // not the fence timer has fired yet (a loaded event loop may run it late).
    await new Promise((r) => setTimeout(r, Math.max(0, ops.lastSentAt + 600 - performance.now())));
    expect(keeper.serving).toBe(false);
    const fenced = await fencedEvent;
    expect(keeper.state).toBe('fenced');
    const lost = await next(keeper, 'lost');
    expect(lost.lease).toBe('1');
    // Never before the bound: counted from just before the keeper sent, a hair before the store saw it.
    expect(lost.at - ops.lastSentAt).toBeGreaterThanOrEqual(990);
    expect(lost.at).toBeGreaterThan(fenced.at);
    expect(lost.at - cutAt).toBeLessThan(5000);
    const again = next(keeper, 'serving');
    ops.reachable = true;
    expect((await again).lease).toBe('2');
    expect(ops.revoked).toContain('1');
    await keeper.stop({ revoke: true });
    expect(ops.revoked).toContain('2');
  });

  it('serves the same lease again when renewals resume before the bound', async () => {
    const ops = new ScriptedLeases();
    const keeper = new LeaseKeeper(ops, { ttlSeconds: 1, renewEveryMs: 100, fenceMarginMs: 400 });
    const first = next(keeper, 'serving');
    keeper.start();
    await first;
    ops.reachable = false;
    await next(keeper, 'fenced');
    const back = next(keeper, 'serving');
    ops.reachable = true;
    expect((await back).lease).toBe('1');
    expect(keeper.serving).toBe(true);
    await keeper.stop({ revoke: false });
    expect(ops.revoked).toEqual([]);
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
