/**
 * JavaScript semantics shared by the in-process backends (QuickJS, isolated-vm): script-mode
 * globals, top-level await, result rendering, console formatting, sandbox timers, request
 * validation and destroy during an execution. Beyond the cross-language conformance suite, these
 * pin down the JS-specific behaviour documented in backends/support/js-isolate.
 */

import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Backend, BackendSession, ExecutionOutcome } from '../../src/backend.js';
import { ErrorCode, SandpoolError } from '../../src/errors.js';
import { NetworkPolicySchema, SessionLimitsSchema } from '../../src/options.js';

export function defineJsSemantics(name: string, makeBackend: () => Backend): void {
  describe(`javascript semantics: ${name}`, () => {
    let backend: Backend;
    let session: BackendSession;
    const limits = SessionLimitsSchema.parse({ memoryMb: 64 });
    const network = NetworkPolicySchema.parse({});

    const create = (): Promise<BackendSession> =>
      backend.create(
        {
          sessionId: `sem-${randomBytes(6).toString('hex')}`,
          poolName: 'sem',
          ownerId: 'sem',
          containerType: 'NodeLTS',
          limits,
          network,
        },
        { onExit: () => undefined },
      );
    const run = (
      code: string,
      extra: { timeoutMs?: number; outputMaxBytes?: number; on?: BackendSession } = {},
    ): Promise<ExecutionOutcome> =>
      backend.execute(extra.on ?? session, {
        language: 'javascript',
        code,
        timeoutMs: extra.timeoutMs ?? 10_000,
        outputMaxBytes: extra.outputMaxBytes ?? 64 * 1024,
      });
    const value = async (code: string): Promise<unknown> => {
      const outcome = await run(code);
      expect(outcome.stderr).toBe('');
      expect(outcome.status).toBe('Succeeded');
      return outcome.result;
    };

    beforeAll(async () => {
      backend = makeBackend();
      session = await create();
    });
    afterAll(async () => {
      await backend.close();
    });

    it('keeps top-level let, const, class and function declarations across executions', async () => {
      await value('let y = 2; const c = 7; class P { v() { return 5; } } function f() { return 3; }');
      expect(await value('y + c + new P().v() + f()')).toBe(17);
      expect(await value('y = 10; y')).toBe(10);
    });

    it('supports top-level await and keeps its declarations', async () => {
      expect(await value('const w = await Promise.resolve(20); w + 1')).toBe(21);
      expect(await value('w')).toBe(20);
      expect(
        await value('const { a, b: [d] } = await Promise.resolve({ a: 1, b: [2] }); function g() { return a + d; } g()'),
      ).toBe(3);
      expect(await value('g() + a')).toBe(4);
      const loop = await run('for await (const v of [Promise.resolve(1), 2]) console.log(v)');
      expect(loop.stdout).toBe('1\n2\n');
      expect(await value('await new Promise((resolve) => setTimeout(() => resolve("late"), 30))')).toBe('late');
    });

    it('awaits a promise result and reports a rejection as Failed', async () => {
      expect(await value('Promise.resolve(5)')).toBe(5);
      const rejected = await run("Promise.reject(new TypeError('nope'))");
      expect(rejected.status).toBe('Failed');
      expect(rejected.stderr).toContain('TypeError: nope');
      const never = await run('new Promise(() => {})', { timeoutMs: 5000 });
      expect(never).toMatchObject({ status: 'Failed', timedOut: false });
      expect(never.stderr).toMatch(/never settled/);
    });

    it('renders results: JSON primitives as values, everything else as text', async () => {
      expect(await value('NaN')).toBeNull();
      expect(await value('null')).toBeNull();
      expect(await value('false')).toBe(false);
      expect(await value('"s"')).toBe('s');
      expect(await value('[1, "two", { three: 3 }]')).toBe('[1,"two",{"three":3}]');
      expect(await value('({ a: { b: [1] } })')).toBe('{"a":{"b":[1]}}');
      expect(await value('10n')).toBe('10n');
      expect(await value("Symbol('s')")).toBe('Symbol(s)');
      expect(await value('function named() {}; named')).toBe('[Function: named]');
      expect(await value('class K {}; K')).toBe('[class K]');
      expect(await value('new Map([[1, "x"]])')).toBe("Map(1) { 1 => 'x' }");
      expect(await value('new Set([1])')).toBe('Set(1) { 1 }');
      expect(await value("new Date('2020-01-02T03:04:05Z')")).toBe('2020-01-02T03:04:05.000Z');
      expect(await value('const cyc = { n: 1 }; cyc.self = cyc; cyc')).toBe('{ n: 1, self: [Circular] }');
      expect(await value("new RangeError('r')")).toMatch(/^RangeError: r/);
      expect(await value('undefined')).toBe('');
    });

    it('formats console output like Node and routes it to the right stream', async () => {
      const out = await run(
        "console.log('a', 1, true, null, undefined, { x: 'y' }, [1, 'two']); console.info('%s=%d', 'n', 42); console.debug('%o', { k: 1 })",
      );
      expect(out.stdout).toBe("a 1 true null undefined { x: 'y' } [ 1, 'two' ]\nn=42\n{ k: 1 }\n");
      const err = await run("console.warn('w'); console.error(new Error('e').message)");
      expect(err).toMatchObject({ stdout: '', stderr: 'w\ne\n' });
    });

    it('reports syntax and runtime errors with their names', async () => {
      const syntax = await run('let = ;');
      expect(syntax.status).toBe('Failed');
      expect(syntax.stderr).toMatch(/SyntaxError/);
      const reference = await run('notDefinedAnywhere + 1');
      expect(reference.stderr).toMatch(/ReferenceError/);
      const inTimer = await run("setTimeout(() => { throw new Error('from timer'); }, 5); 'x'");
      expect(inTimer.status).toBe('Failed');
      expect(inTimer.stderr).toContain('from timer');
      expect(await value('1 + 1')).toBe(2);
    });

    it('runs sandbox timers in due order with microtasks first, and clears them', async () => {
      const ordered = await run(
        "setTimeout(() => console.log('b'), 30); setTimeout(() => console.log('a'), 10); queueMicrotask(() => console.log('m')); 'x'",
      );
      expect(ordered).toMatchObject({ status: 'Succeeded', result: 'x', stdout: 'm\na\nb\n' });
      const cleared = await run("const t = setTimeout(() => console.log('no'), 10); clearTimeout(t); 'y'");
      expect(cleared.stdout).toBe('');
      const interval = await run(
        'let ticks = 0; const iv = setInterval(() => { console.log(++ticks); if (ticks === 3) clearInterval(iv); }, 5)',
      );
      expect(interval.stdout).toBe('1\n2\n3\n');
    });

    it('cuts UTF-8 output at the byte cap without splitting a character', async () => {
      const out = await run("console.log('é'.repeat(20))", { outputMaxBytes: 11 });
      expect(out.stdoutTruncated).toBe(true);
      const body = out.stdout.split('\n[output truncated')[0] ?? '';
      expect(body).toBe('é'.repeat(5));
    });

    it('rejects requests it cannot run with typed errors', async () => {
      const wrong = await backend
        .execute(session, { language: 'python', code: '1', timeoutMs: 1000, outputMaxBytes: 100 })
        .catch((e: unknown) => e);
      expect(SandpoolError.is(wrong) && wrong.code).toBe(ErrorCode.UNSUPPORTED);
      const badTimeout = await backend
        .execute(session, { language: 'javascript', code: '1', timeoutMs: 0, outputMaxBytes: 100 })
        .catch((e: unknown) => e);
      expect(SandpoolError.is(badTimeout) && badTimeout.code).toBe(ErrorCode.INVALID_REQUEST);
    });

    it('ends an execution that is running when its session is destroyed', async () => {
      const doomed = await create();
      const running = run('await new Promise((resolve) => setTimeout(resolve, 8000)); 1', {
        on: doomed,
        timeoutMs: 20_000,
      }).catch((e: unknown) => e);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const started = performance.now();
      await backend.destroy(doomed, { reason: 'stopped' });
      const outcome = await running;
      expect(performance.now() - started).toBeLessThan(4000);
      expect(SandpoolError.is(outcome)).toBe(true);
      // Destroyed means gone: it runs nothing more.
      await expect(run('1', { on: doomed })).rejects.toMatchObject({ code: 'SANDPOOL_SESSION_NOT_FOUND' });
    });
  });
}
