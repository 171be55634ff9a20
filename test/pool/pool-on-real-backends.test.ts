/**
 * The pool's promises, end to end on real in-process engines: get-or-create with state, isolation
 * between identifiers, cooldown reaping and a fresh session after it, stop, a timeout that keeps
 * the pool healthy, and a close that leaves no session behind. (Container and VM pools are covered
 * by their own end-to-end files.)
 */
import { afterAll, describe, expect, it } from 'vitest';

import { IsolatedVMBackend } from '../../backends/isolated-vm/index.js';
import { QuickJSBackend } from '../../backends/quickjs/index.js';
import { SessionPool, type Backend, type SessionDestroyedEvent } from '../../src/index.js';

const engines: [string, () => Backend][] = [
  ['quickjs', () => new QuickJSBackend()],
  ['isolated-vm', () => new IsolatedVMBackend()],
];

describe.each(engines)('SessionPool on %s', (_name, makeBackend) => {
  const pool = new SessionPool({
    backend: makeBackend(),
    containerType: 'NodeLTS',
    readySessionInstances: 3,
    cooldownPeriodInSeconds: 0.5,
    limits: { executionTimeoutSeconds: 5, memoryMb: 64 },
  });
  const destroyed: SessionDestroyedEvent[] = [];
  pool.on('sessionDestroyed', (e) => destroyed.push(e));
  afterAll(() => pool.close());

  it('keeps state per identifier and isolates identifiers from each other', async () => {
    await pool.start();
    const a = await pool.acquire('alice');
    const b = await pool.acquire('bob-1');
    await a.execute({ code: 'var secret = "alice-only"; globalThis.shared = 1' });
    expect((await (await pool.acquire('alice')).execute({ code: 'secret' })).result).toBe('alice-only');
    const fromB = await b.execute({ code: 'typeof secret + ":" + typeof shared' });
    expect(fromB.result).toBe('undefined:undefined');
  });

  it('reaps an idle session after the cooldown and gives the identifier a fresh one', async () => {
    const s = await pool.acquire('cooler');
    await s.execute({ code: 'var mark = 7' });
    await expect.poll(() => s.state, { timeout: 5_000, interval: 50 }).toBe('Destroyed');
    expect(destroyed.some((e) => e.identifier === 'cooler' && e.reason === 'cooldown')).toBe(true);
    const fresh = await pool.acquire('cooler');
    expect(fresh.id).not.toBe(s.id);
    expect((await fresh.execute({ code: 'typeof mark' })).result).toBe('undefined');
  });

  it('interrupts a runaway execution and stays usable', async () => {
    const s = await pool.acquire('spinner');
    await s.execute({ code: 'var before = 1' });
    const spun = await s.execute({ code: 'while (true) {}', timeoutInSeconds: 0.3 });
    expect(spun).toMatchObject({ status: 'Failed', error: { code: 'SANDPOOL_EXECUTION_TIMEOUT' } });
    const after = await (await pool.acquire('spinner')).execute({ code: '1 + 1' });
    expect(after).toMatchObject({ status: 'Succeeded', result: 2 });
  });

  it('stop() wipes the session; close() leaves nothing', async () => {
    const s = await pool.acquire('stopper');
    await s.execute({ code: 'var left = true' });
    await s.stop();
    await expect(s.execute({ code: '1' })).rejects.toMatchObject({ code: 'SANDPOOL_SESSION_NOT_FOUND' });
    expect((await (await pool.acquire('stopper')).execute({ code: 'typeof left' })).result).toBe('undefined');
    await pool.close();
    expect(pool.stats()).toMatchObject({ ready: 0, allocated: 0, pending: 0 });
    expect(pool.sessions()).toEqual([]);
  });
});
