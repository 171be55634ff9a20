/**
 * Backpressure under request floods, through the real server and real QuickJS sessions: thousands of
 * concurrent executions on one session, and a crowd of new identifiers against a small pool. Every
 * request is answered (200, or 429 with Retry-After), nothing is queued without bound, the process's
 * memory stays bounded, and the pool is healthy afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { jsPool, startServer, type Harness } from '../server/helpers.js';

// Node's fetch opens as many connections as requests in flight: the flood is concurrent server-side.
const FLOOD = 2_000;

describe('request floods', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startServer({
      withDefaultPool: false,
      pools: [jsPool('flood', { readySessionInstances: 2, maxConcurrentSessions: 8, limits: { maxQueuedExecutions: 16 } })],
    });
  });
  afterAll(() => h.close());

  function execute(identifier: string, code: string): Promise<Response> {
    return h.request(`/pools/flood/code/execute?identifier=${identifier}&api-version=2024-02-02-preview`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ properties: { codeInputType: 'inline', executionType: 'synchronous', code } }),
    });
  }

  it('answers a flood on one session with 200s and 429s, bounded, and the session stays usable', async () => {
    await (await execute('flooded', 'var n = 0')).text();
    globalThis.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const responses = await Promise.all(
      Array.from({ length: FLOOD }, () => execute('flooded', 'await new Promise((r) => setTimeout(r, 2)); n += 1; n')),
    );
    const statuses = new Map<number, number>();
    for (const r of responses) {
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (r.status === 429) expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      await r.arrayBuffer();
    }
    expect(statuses.get(200) ?? 0).toBeGreaterThan(0);
    // The bounded per-session queue pushed back: not every one of 2,000 requests could wait.
    expect(statuses.get(429) ?? 0).toBeGreaterThan(0);
    expect([...statuses.keys()].every((s) => s === 200 || s === 429)).toBe(true);
    const ok = statuses.get(200) ?? 0;
    // Executed in order, exactly once each: the counter equals the number of 200s.
    const final = (await (await execute('flooded', 'n')).json()) as { properties: { result: number } };
    expect(final.properties.result).toBe(ok);
    globalThis.gc?.();
    const grownMb = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
    expect(grownMb).toBeLessThan(128);
  }, 120_000);

  it('answers a crowd of new identifiers beyond maxConcurrentSessions with 429 and recovers', async () => {
    const responses = await Promise.all(Array.from({ length: 200 }, (_, i) => execute(`crowd-${i}`, '1 + 1')));
    const statuses = responses.map((r) => r.status);
    await Promise.all(responses.map((r) => r.arrayBuffer()));
    expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    for (const r of responses.filter((x) => x.status === 429)) expect(r.headers.get('retry-after')).not.toBeNull();
    // Free the pool and prove it serves new identifiers again.
    const list = (await (await h.request('/pools/flood/listSessions?api-version=2025-02-02-preview')).json()) as {
      value: { identifier: string }[];
    };
    for (const s of list.value)
      await h.request(`/pools/flood/session?identifier=${encodeURIComponent(s.identifier)}&api-version=2025-10-02-preview`, {
        method: 'DELETE',
      });
    const after = await execute('after-the-crowd', '6 * 7');
    expect(after.status).toBe(200);
    expect(((await after.json()) as { properties: { result: number } }).properties.result).toBe(42);
  }, 120_000);
});
