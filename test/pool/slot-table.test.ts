import { describe, expect, it } from 'vitest';

import { HostMemoryBudget } from '../../src/pool/host-budget.js';
import { newSlot } from '../../src/pool/slot.js';
import { SlotTable } from '../../src/pool/slot-table.js';
import { PoolStatistics } from '../../src/pool/statistics.js';

function table(reserveMb = 100) {
  const stats = new PoolStatistics();
  const budget = new HostMemoryBudget(1000);
  return { slots: new SlotTable(stats, budget, reserveMb), stats, budget };
}

describe('SlotTable transitions', () => {
  it('derives every count from its sets and reserves memory while a slot lives', () => {
    const { slots, stats, budget } = table();
    const a = newSlot(Date.now());
    const b = newSlot(Date.now());
    slots.transition(a, 'Pending');
    slots.transition(b, 'Pending');
    expect([slots.size, slots.pending, slots.ready, slots.allocated]).toEqual([2, 2, 0, 0]);
    expect(budget.reservedMb).toBe(200);
    expect(slots.room(10)).toBe(8);

    slots.transition(a, 'Ready');
    expect(a.readyAt).toBeTypeOf('number');
    expect([slots.pending, slots.ready]).toEqual([1, 1]);
    expect(slots.oldestReady()).toBe(a);

    slots.transition(a, 'Allocated', 'user-1');
    expect(a).toMatchObject({ state: 'Allocated', identifier: 'user-1' });
    expect(slots.allocatedTo('user-1')).toBe(a);
    expect([slots.ready, slots.allocated]).toEqual([0, 1]);

    slots.transition(a, 'Destroyed', 'stopped');
    slots.transition(b, 'Destroyed', 'poolClosed');
    expect([slots.size, slots.pending, slots.ready, slots.allocated]).toEqual([0, 0, 0, 0]);
    expect(slots.allocatedTo('user-1')).toBeUndefined();
    expect(budget.reservedMb).toBe(0);
    // Only sessions that were created count as destroyed; a dropped Pending slot does not.
    expect(stats.destroyed).toMatchObject({ stopped: 1, poolClosed: 0 });
  });

  it('refuses a transition the state machine does not have', () => {
    const { slots } = table();
    const slot = newSlot(Date.now());
    expect(() => slots.transition(slot, 'Ready')).toThrow(/cannot go from new to Ready/);
    slots.transition(slot, 'Pending');
    expect(() => slots.transition(slot, 'Allocated', 'user-1')).toThrow(/from Pending to Allocated/);
    slots.transition(slot, 'Destroyed', 'failed');
    expect(() => slots.transition(slot, 'Pending')).toThrow(/from Destroyed to Pending/);
  });

  it('clears the expiry timer of a destroyed slot', () => {
    const { slots } = table(0);
    const slot = newSlot(Date.now());
    slots.transition(slot, 'Pending');
    slots.transition(slot, 'Ready');
    slots.transition(slot, 'Allocated', 'user-2');
    let fired = false;
    slot.expiryTimer = setTimeout(() => {
      fired = true;
    }, 0);
    slots.transition(slot, 'Destroyed', 'cooldown');
    expect(slot.expiryTimer).toBeUndefined();
    return new Promise<void>((resolve) =>
      setTimeout(() => {
        expect(fired).toBe(false);
        resolve();
      }, 10),
    );
  });

  it('hands out Ready slots oldest first and trims newest first', () => {
    const { slots } = table(0);
    const made = [1, 2, 3].map(() => newSlot(Date.now()));
    for (const slot of made) {
      slots.transition(slot, 'Pending');
      slots.transition(slot, 'Ready');
    }
    expect(slots.oldestReady()).toBe(made[0]);
    expect(slots.newestReadyFirst()).toEqual([made[2], made[1], made[0]]);
  });
});
