/**
 * The library side of issue 15 on real QuickJS sessions: `execute({ onOutput, env })`,
 * `executeStream` (events, abort, early exit), and `acquire(id, { env, files })` (bound at claim,
 * read-only in the isolates, absent from later sessions, never in events, stats or errors).
 */

import { afterEach, describe, expect, it } from 'vitest';

import { QuickJSBackend } from '../../backends/quickjs/index.js';
import type { BackendSession } from '../../src/backend.js';
import { BackendError, ErrorCode, SessionPool, type ExecutionEvent, type OutputChunk } from '../../src/index.js';
import { FakeBackend } from '../helpers/fake-backend.js';

const SECRET = 'sk-test-0123456789abcdef';
let pool: SessionPool | undefined;

function jsPool(extra: Record<string, unknown> = {}): SessionPool {
  pool = new SessionPool({ backend: new QuickJSBackend(), containerType: 'NodeLTS', readySessionInstances: 2, ...extra });
  return pool;
}

async function collect(events: AsyncIterable<ExecutionEvent>): Promise<Array<ExecutionEvent & { at: number }>> {
  const seen: Array<ExecutionEvent & { at: number }> = [];
  for await (const event of events) seen.push({ ...event, at: performance.now() });
  return seen;
}

afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

describe('execute({ onOutput }) and executeStream', () => {
  it('delivers console output between awaits, before the execution ends', async () => {
    const p = jsPool();
    await p.start();
    const session = await p.acquire('stream-1');
    const seen: Array<{ chunk: OutputChunk; at: number }> = [];
    const code = 'console.log("a"); await new Promise((r) => setTimeout(r, 1000)); console.error("b"); 42';
    const result = await session.execute({ code, onOutput: (chunk) => seen.push({ chunk, at: performance.now() }) });
    const ended = performance.now();
    expect(result).toMatchObject({ status: 'Succeeded', stdout: 'a\n', stderr: 'b\n', result: 42 });
    expect(seen.map((s) => s.chunk)).toEqual([
      { type: 'stdout', text: 'a\n' },
      { type: 'stderr', text: 'b\n' },
    ]);
    // A loaded host may stall between the script and its first drain; the second still comes ~1 s later.
    expect(ended - seen[0]!.at).toBeGreaterThan(500);
  });

  it('ignores a throwing callback and never calls it after the execution settled', async () => {
    const p = jsPool();
    const session = await p.acquire('stream-2');
    let calls = 0;
    const result = await session.execute({
      code: 'console.log("x"); setTimeout(() => console.log("late"), 0); 1',
      onOutput: () => {
        calls += 1;
        throw new Error('consumer broke');
      },
    });
    expect(result).toMatchObject({ status: 'Succeeded', result: 1 });
    const before = calls;
    await session.execute({ code: '2' });
    expect(calls).toBe(before);
  });

  it('yields output, then result, then end with the fields execute returns', async () => {
    const p = jsPool();
    const session = await p.acquire('stream-3');
    const events = await collect(
      session.executeStream({
        code: 'console.log("one"); await new Promise((r) => setTimeout(r, 1000)); console.log("two"); 6 * 7',
      }),
    );
    expect(events.map((e) => e.type)).toEqual(['stdout', 'stdout', 'result', 'end']);
    expect(events[2]).toMatchObject({ type: 'result', result: 42 });
    const end = events[3] as Extract<ExecutionEvent, { type: 'end' }>;
    expect(end).toMatchObject({ status: 'Succeeded', stdout: 'one\ntwo\n', result: 42, sessionState: 'kept' });
    expect(end.id).toMatch(/^exec-/);
    expect(events[3]!.at - events[0]!.at).toBeGreaterThan(500);
    // No value, no `result` event.
    const quiet = await collect(session.executeStream({ code: 'void 0' }));
    expect(quiet.map((e) => e.type)).toEqual(['end']);
  });

  it('interrupts the code when the signal aborts or the loop is left early', async () => {
    const p = jsPool();
    const session = await p.acquire('stream-4');
    const code = 'var ticks = 0; for (;;) { ticks++; console.log(ticks); await new Promise((r) => setTimeout(r, 20)); }';
    const controller = new AbortController();
    const iterate = async () => {
      for await (const event of session.executeStream({ code }, { signal: controller.signal })) {
        if (event.type === 'stdout') controller.abort();
      }
    };
    await expect(iterate()).rejects.toMatchObject({ code: ErrorCode.ABORTED });
    const afterAbort = (await session.execute({ code: 'ticks' })).result as number;
    await new Promise((r) => setTimeout(r, 100));
    expect((await session.execute({ code: 'ticks' })).result).toBe(afterAbort);

    for await (const event of session.executeStream({ code })) {
      if (event.type === 'stdout') break;
    }
    const afterBreak = (await session.execute({ code: 'ticks' })).result as number;
    await new Promise((r) => setTimeout(r, 100));
    expect((await session.execute({ code: 'ticks' })).result).toBe(afterBreak);
  });

  it('rejects a stream that cannot run, like execute does', async () => {
    const p = jsPool();
    const session = await p.acquire('stream-5');
    await expect(collect(session.executeStream({ code: '1', language: 'python' }))).rejects.toMatchObject({
      code: ErrorCode.INVALID_REQUEST,
    });
  });
});

describe('acquire(id, { env }) and execute({ env })', () => {
  it('binds a read-only env object at claim; execute env overlays it for one execution', async () => {
    const p = jsPool();
    await p.start();
    const session = await p.acquire('env-1', { env: { API_KEY: SECRET, REGION: 'eu' } });
    expect((await session.execute({ code: 'env.API_KEY' })).result).toBe(SECRET);
    expect((await session.execute({ code: 'Object.isFrozen(env) && Object.keys(env).sort().join()' })).result).toBe(
      'API_KEY,REGION',
    );
    expect(
      (await session.execute({ code: '"use strict"; try { env.API_KEY = "x"; "changed" } catch (e) { e.name }' })).result,
    ).toBe('TypeError');
    expect((await session.execute({ code: 'env.REGION + "/" + env.ONCE', env: { ONCE: 'here', REGION: 'us' } })).result).toBe(
      'us/here',
    );
    expect((await session.execute({ code: 'env.REGION + "/" + env.ONCE' })).result).toBe('eu/undefined');
    // A session's own `var env` keeps working.
    expect((await session.execute({ code: 'var env = 5; env + 1' })).result).toBe(6);
  });

  it('keeps the warm path: a Ready session is claimed, no create on the way', async () => {
    const p = jsPool();
    await p.start();
    const created = p.stats().created;
    const started = performance.now();
    await p.acquire('env-warm', { env: { API_KEY: SECRET } });
    const elapsed = performance.now() - started;
    expect(p.stats().coldMisses).toBe(0);
    expect(p.stats().created - created).toBeLessThanOrEqual(1); // only the refill behind it
    expect(elapsed).toBeLessThan(500);
  });

  it('is absent from a later session, ignored for a live one, and never in events, stats or errors', async () => {
    const p = jsPool();
    const seen: unknown[] = [];
    for (const name of ['sessionAllocated', 'executionStarted', 'executionFinished', 'sessionDestroyed', 'error'] as const) {
      p.on(name, (payload: unknown) => seen.push(payload));
    }
    await p.start();
    const first = await p.acquire('env-2', { env: { API_KEY: SECRET } });
    expect((await first.execute({ code: 'env.API_KEY' })).result).toBe(SECRET);
    const again = await p.acquire('env-2', { env: { API_KEY: 'other' } });
    expect(again).toBe(first);
    expect((await again.execute({ code: 'env.API_KEY' })).result).toBe(SECRET);
    await p.release('env-2');
    const later = await p.acquire('env-2');
    expect((await later.execute({ code: 'typeof env.API_KEY' })).result).toBe('undefined');
    const bad = await p.acquire('env-3', { env: { 'BAD NAME': SECRET } }).catch((e: unknown) => e);
    expect(bad).toMatchObject({ code: ErrorCode.INVALID_REQUEST });
    const nul = await p.acquire('env-3', { env: { GOOD: `${SECRET}\0` } }).catch((e: unknown) => e as Error);
    expect(nul).toMatchObject({ code: ErrorCode.INVALID_REQUEST });
    expect((nul as Error).message).not.toContain(SECRET);
    expect(p.get('env-3')).toBeUndefined();
    expect(JSON.stringify(seen)).not.toContain(SECRET);
    expect(JSON.stringify(p.stats())).not.toContain(SECRET);
    expect(JSON.stringify(p.sessions())).not.toContain(SECRET);
  });

  it('gives every concurrent acquire of a new identifier the bound session', async () => {
    const p = jsPool();
    await p.start();
    const [a, b] = await Promise.all([p.acquire('env-4', { env: { K: 'v' } }), p.acquire('env-4')]);
    expect(a).toBe(b);
    expect((await b.execute({ code: 'env.K' })).result).toBe('v');
  });

  it('refuses files where sessions have none, and env where a backend cannot bind it', async () => {
    const p = jsPool();
    await expect(p.acquire('env-5', { files: { 'a.txt': 'x' } })).rejects.toMatchObject({ code: ErrorCode.UNSUPPORTED });
    class NoEnvironmentBackend extends FakeBackend {
      override setEnvironment = undefined as unknown as FakeBackend['setEnvironment'];
    }
    const fake = new SessionPool({ backend: new NoEnvironmentBackend(), containerType: 'NodeLTS', readySessionInstances: 1 });
    try {
      await expect(fake.acquire('env-6', { env: { K: 'v' } })).rejects.toMatchObject({ code: ErrorCode.UNSUPPORTED });
      expect(fake.stats().allocated).toBe(0);
    } finally {
      await fake.close();
    }
  });

  it('destroys a claimed session whose binding fails and rejects the acquire', async () => {
    class RefusingBackend extends FakeBackend {
      override async setEnvironment(_session: BackendSession, _env: Readonly<Record<string, string>>): Promise<void> {
        throw new BackendError('the sandbox refused its environment');
      }
    }
    const fake = new SessionPool({ backend: new RefusingBackend(), containerType: 'NodeLTS', readySessionInstances: 1 });
    try {
      await fake.start();
      const destroyed = new Promise<string>((resolve) => fake.once('sessionDestroyed', (e) => resolve(e.reason)));
      await expect(fake.acquire('env-7', { env: { K: SECRET } })).rejects.toMatchObject({ code: ErrorCode.BACKEND_FAILED });
      expect(await destroyed).toBe('failed');
      expect(fake.get('env-7')).toBeUndefined();
    } finally {
      await fake.close();
    }
  });
});
