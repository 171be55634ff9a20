/**
 * What a request for a new identifier gets from a full or slow pool, over real HTTP: 429 with a
 * Retry-After that says when the soonest slot frees, at once; a wait only when it sent
 * `Prefer: wait=N`, never past N nor the server's maxAcquireWaitSeconds; a cold start never
 * longer than maxAcquireWaitSeconds either. The pools run on the fake backend, whose creation time
 * the tests set; test/server/burst-at-capacity.containers.test.ts runs the reported burst on
 * real containers.
 */
import { afterEach, describe, expect, it } from 'vitest';

import { InvalidOptionsError, SessionPool } from '../../src/index.js';
import { createServer } from '../../src/server/index.js';
import { preferredWaitSeconds } from '../../src/server/server-state.js';
import { FakeBackend } from '../helpers/fake-backend.js';
import { startServer, type Harness } from './helpers.js';

const COOLDOWN_S = 300;

function fakePool(backend: FakeBackend, options: Partial<ConstructorParameters<typeof SessionPool>[0]> = {}): SessionPool {
  return new SessionPool({
    name: 'py',
    backend,
    containerType: 'PythonLTS',
    readySessionInstances: 1,
    maxConcurrentSessions: 6,
    cooldownPeriodInSeconds: COOLDOWN_S,
    ...options,
  });
}

function execute(h: Harness, identifier: string, headers: Record<string, string> = {}): Promise<Response> {
  return h.request(`/pools/py/code/execute?identifier=${identifier}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ properties: { codeInputType: 'inline', executionType: 'synchronous', code: 'ok' } }),
  });
}

describe('acquire bounds over HTTP', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('answers a burst of new identifiers at the cap with 200 or 429 + the soonest free slot, at once', async () => {
    const backend = new FakeBackend();
    backend.createDelayMs = 200;
    const pool = fakePool(backend);
    h = await startServer({ withDefaultPool: false, pools: [pool] });
    await pool.start();
    for (const held of ['held-1', 'held-2']) expect((await execute(h, held)).status).toBe(200);
    const heldAt = Date.now();
    const started = performance.now();
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        execute(h!, `burst-${i}`).then(async (r) => ({
          status: r.status,
          retryAfter: r.headers.get('retry-after'),
          body: await r.text(),
        })),
      ),
    );
    // Creation takes 200 ms, four at a time: every answer is in well before any cooldown.
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(answers.filter((a) => a.status === 200)).toHaveLength(4);
    const refused = answers.filter((a) => a.status === 429);
    expect(refused).toHaveLength(6);
    for (const answer of refused) {
      expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'SessionPoolCapacityExceeded' } });
      // held-1's cooldown ends first: 300 s after its last use, less the time since.
      const retryAfter = Number(answer.retryAfter);
      expect(retryAfter).toBeLessThanOrEqual(COOLDOWN_S);
      expect(retryAfter).toBeGreaterThanOrEqual(COOLDOWN_S - Math.ceil((Date.now() - heldAt) / 1000) - 2);
    }
    expect(pool.stats()).toMatchObject({ waiting: 0, pending: 0, allocated: 6 });
  });

  it('waits for a free slot only when asked with Prefer: wait=N, and no longer than N', async () => {
    const backend = new FakeBackend();
    const pool = fakePool(backend, { readySessionInstances: 0, maxConcurrentSessions: 1, cooldownPeriodInSeconds: 2 });
    h = await startServer({ withDefaultPool: false, pools: [pool] });
    expect((await execute(h, 'held-1')).status).toBe(200);
    expect((await execute(h, 'impatient')).status).toBe(429);
    // One second is too short for held-1's two-second cooldown: 503 after about a second.
    let started = performance.now();
    const short = await execute(h, 'patient', { prefer: 'wait=1' });
    expect(short.status).toBe(503);
    expect(await short.json()).toMatchObject({ error: { code: 'SessionAllocationTimedOut' } });
    expect(performance.now() - started).toBeGreaterThanOrEqual(900);
    expect(performance.now() - started).toBeLessThan(1_900);
    // Long enough: held-1 is reaped at its cooldown and 'patient' gets the slot.
    started = performance.now();
    const long = await execute(h, 'patient', { prefer: 'respond-async, wait=10' });
    expect(long.status).toBe(200);
    expect(performance.now() - started).toBeLessThan(3_000);
  });

  it('bounds a cold start by maxAcquireWaitSeconds, and the wait a caller asks for by it too', async () => {
    const backend = new FakeBackend();
    backend.createDelayMs = 60_000;
    const pool = fakePool(backend, { readySessionInstances: 0 });
    h = await startServer({ withDefaultPool: false, pools: [pool], maxAcquireWaitSeconds: 1 });
    let started = performance.now();
    const cold = await execute(h, 'cold-one');
    expect(cold.status).toBe(503);
    expect(cold.headers.get('retry-after')).not.toBeNull();
    expect(performance.now() - started).toBeLessThan(1_900);
    started = performance.now();
    expect((await execute(h, 'cold-two', { prefer: 'wait=30' })).status).toBe(503);
    expect(performance.now() - started).toBeLessThan(1_900);
    expect(pool.stats().waiting).toBe(0);
  });

  it('refuses a maxAcquireWaitSeconds that is not a bound', () => {
    for (const bad of [Number.POSITIVE_INFINITY, 0, -1, Number.NaN, 3601]) {
      expect(() => createServer({ maxAcquireWaitSeconds: bad })).toThrow(InvalidOptionsError);
    }
  });
});

describe('Prefer: wait=N', () => {
  it('reads the wait preference among others, and nothing else as one', () => {
    expect(preferredWaitSeconds('wait=30')).toBe(30);
    expect(preferredWaitSeconds('respond-async, wait=5')).toBe(5);
    expect(preferredWaitSeconds(['handling=lenient', 'wait="7"'])).toBe(7);
    expect(preferredWaitSeconds('Wait = 3 ; foo')).toBe(3);
    for (const none of [undefined, '', 'wait=0', 'wait=-1', 'wait=abc', 'nowait=5', 'wait=5x', `wait=${'9'.repeat(12)}`]) {
      expect(preferredWaitSeconds(none)).toBeUndefined();
    }
  });
});
