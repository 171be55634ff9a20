/**
 * The backend conformance suite: the same cases against ANY `Backend`, through the backend
 * contract only (no pool). A test file per backend calls `defineBackendConformance` with a factory
 * and its language; code strings come from snippets.ts, per language.
 *
 * What it checks: create/destroy (destroy idempotent), state across executions, Azure result
 * semantics, stdout/stderr capture, errors as Failed outcomes, timeouts that interrupt the code,
 * output caps, memory limits that fail the execution and not the host, isolation between
 * sessions, a destroy while code runs, output streamed while the code runs (cap and order as in
 * the result), environment variables bound to a session and to one execution, that every
 * rejection is a SandpoolError, and (through a SessionPool over the backend) that executions of
 * one session reach the backend one at a time, in call order; and pause, resume and fork by
 * capability (pause-conformance.ts).
 */

import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';

import type {
  Backend,
  BackendSession,
  ExecuteRequest,
  ExecutionOutcome,
  Language,
  OutputChunk,
  SessionSpec,
} from '../../src/backend.js';
import { SandpoolError } from '../../src/errors.js';
import { NetworkPolicySchema, SessionLimitsSchema, type ContainerType, type SessionLimitsInput } from '../../src/options.js';
import { SessionPool } from '../../src/session-pool.js';
import { registerPauseCases } from './pause-conformance.js';
import { SNIPPETS, type ConformanceSnippets } from './snippets.js';

export type ConformanceCase =
  | 'capabilities'
  | 'lifecycle'
  | 'state'
  | 'results'
  | 'output'
  | 'errors'
  | 'timeout'
  | 'timeoutFinally'
  | 'outputCap'
  | 'memory'
  | 'isolation'
  | 'destroyed'
  | 'destroyWhileRunning'
  | 'rejections'
  | 'ordering'
  | 'pause'
  | 'fork'
  | 'corruptCheckpoint'
  | 'streaming'
  | 'environment';

export interface ConformanceOptions {
  /** Makes the backend under test; called once per suite and closed at the end. */
  readonly makeBackend: () => Backend | Promise<Backend>;
  readonly containerType: ContainerType;
  readonly language: Language;
  /** Override single snippets (or all, for a language without a built-in table). */
  readonly snippets?: Partial<ConformanceSnippets>;
  /** Session limits for every session (memory bombs use `memoryMb`). @default { memoryMb: 64 } */
  readonly limits?: SessionLimitsInput;
  /** Slow engines (containers, VMs) raise these. */
  readonly timeouts?: {
    /** Budget for prepare() and one create(). @default 60 000 */
    readonly createMs?: number;
    /** Per-test budget on top of create. @default 30 000 */
    readonly testMs?: number;
    /** Execution time limit given to an infinite loop. @default 1 000 */
    readonly loopTimeoutMs?: number;
    /** Execution time limit for ordinary snippets. @default 20 000 */
    readonly executionMs?: number;
  };
  /** Cases to skip, with the reason as the value (or true). */
  readonly skip?: Partial<Record<ConformanceCase, boolean | string>>;
}

const OUTPUT_CAP = 1000;

/** Register the conformance suite for one backend. */
export function defineBackendConformance(name: string, options: ConformanceOptions): void {
  const base = SNIPPETS[options.language];
  if (base === undefined && options.snippets === undefined) {
    throw new Error(`no conformance snippets for ${options.language}: pass options.snippets`);
  }
  const code = { ...base, ...options.snippets } as ConformanceSnippets;
  const createMs = options.timeouts?.createMs ?? 60_000;
  const testMs = createMs + (options.timeouts?.testMs ?? 30_000);
  const loopMs = options.timeouts?.loopTimeoutMs ?? 1000;
  const executionMs = options.timeouts?.executionMs ?? 20_000;
  const limits = SessionLimitsSchema.parse({ memoryMb: 64, ...options.limits });
  const network = NetworkPolicySchema.parse({});

  const test = (id: ConformanceCase, title: string, fn: (t: TestContext) => Promise<void>, timeout = testMs): void => {
    const skip = options.skip?.[id];
    if (skip) it.skip(`${title} (skipped: ${skip === true ? 'not applicable' : skip})`, fn);
    else it(title, fn, timeout);
  };

  describe(`backend conformance: ${name} (${options.language})`, () => {
    let backend: Backend;
    const live = new Set<BackendSession>();

    const spec = (): SessionSpec => ({
      sessionId: `conf-${randomBytes(6).toString('hex')}`,
      poolName: 'conformance',
      ownerId: `conformance-${process.pid}`,
      containerType: options.containerType,
      limits,
      network,
    });

    async function create(): Promise<BackendSession> {
      const session = await backend.create(spec(), { onExit: () => undefined });
      live.add(session);
      return session;
    }

    async function destroy(session: BackendSession): Promise<void> {
      await backend.destroy(session, { reason: 'stopped' });
      live.delete(session);
    }

    function run(session: BackendSession, source: string, extra: Partial<ExecuteRequest> = {}): Promise<ExecutionOutcome> {
      return backend.execute(session, {
        language: options.language,
        code: source,
        timeoutMs: executionMs,
        outputMaxBytes: 1024 * 1024,
        ...extra,
      });
    }

    async function rejection(promise: Promise<unknown>): Promise<unknown> {
      try {
        await promise;
      } catch (error) {
        return error;
      }
      throw new Error('expected a rejection, but the operation succeeded');
    }

    beforeAll(async () => {
      backend = await options.makeBackend();
      await backend.prepare?.({
        poolName: 'conformance',
        ownerId: `conformance-${process.pid}`,
        containerType: options.containerType,
        limits,
        network,
      });
    }, createMs);

    afterAll(async () => {
      for (const session of live) await backend.destroy(session, { reason: 'poolClosed' }).catch(() => undefined);
      await backend?.close();
    }, createMs);

    test('capabilities', 'declares the language and container type it is tested with', async () => {
      expect(backend.name).toMatch(/^[a-z][a-z0-9-]*$/);
      expect(backend.capabilities.languages).toContain(options.language);
      expect(backend.capabilities.containerTypes).toContain(options.containerType);
    });

    test('lifecycle', 'creates a session that runs code, and destroys it idempotently', async () => {
      const session = await create();
      expect(typeof session.id).toBe('string');
      const outcome = await run(session, code.resultInt);
      expect(outcome.status).toBe('Succeeded');
      expect(outcome.result).toBe(42);
      expect(outcome.executionTimeInMilliseconds).toBeGreaterThanOrEqual(0);
      await destroy(session);
      await backend.destroy(session, { reason: 'stopped' });
      await backend.destroy({ id: 'conf-never-existed' }, { reason: 'stopped' });
    });

    test('state', 'keeps state across executions', async () => {
      const session = await create();
      const first = await run(session, code.setVar);
      expect(first.status).toBe('Succeeded');
      expect(first.result).toBe('');
      const second = await run(session, code.readVar);
      expect(second).toMatchObject({ status: 'Succeeded', result: 42, sessionState: 'kept' });
      await destroy(session);
    });

    test('results', 'renders the last expression with Azure result semantics', async () => {
      const session = await create();
      expect((await run(session, code.resultInt)).result).toBe(42);
      expect((await run(session, code.resultNone)).result).toBe('');
      expect((await run(session, code.resultString)).result).toBe('hello');
      expect((await run(session, code.resultBool)).result).toBe(true);
      const object = await run(session, code.resultObject);
      expect(object.status).toBe('Succeeded');
      expect(typeof object.result).toBe('string');
      expect(object.result).toMatch(/a/);
      expect(object.result).toMatch(/1/);
      expect(object.result).toMatch(/two/);
      await destroy(session);
    });

    test('output', 'captures stdout and stderr separately', async () => {
      const session = await create();
      const out = await run(session, code.stdout);
      expect(out.status).toBe('Succeeded');
      expect(out.stdout).toBe('hello stdout\n');
      expect(out.stderr).toBe('');
      const err = await run(session, code.stderr);
      expect(err.stdout).toBe('');
      expect(err.stderr).toContain('hello stderr');
      await destroy(session);
    });

    test('errors', 'reports an uncaught error as Failed with its message in stderr, and keeps the session', async () => {
      const session = await create();
      await run(session, code.setVar);
      const failed = await run(session, code.error);
      expect(failed.status).toBe('Failed');
      expect(failed.stderr).toContain('boom-conformance');
      expect(failed.timedOut ?? false).toBe(false);
      expect(failed.sessionState).toBe('kept');
      expect((await run(session, code.readVar)).result).toBe(42);
      await destroy(session);
    });

    async function expectInterrupted(source: string): Promise<void> {
      const session = await create();
      await run(session, code.setVar);
      const started = performance.now();
      const outcome = await run(session, source, { timeoutMs: loopMs });
      const elapsed = performance.now() - started;
      expect(outcome.status).toBe('Failed');
      expect(outcome.timedOut).toBe(true);
      expect(outcome.stderr).toMatch(/timed out/i);
      expect(elapsed).toBeGreaterThanOrEqual(loopMs * 0.9);
      expect(['kept', 'restarted', 'lost']).toContain(outcome.sessionState);
      if (outcome.sessionState === 'kept') {
        expect(await run(session, code.readVar)).toMatchObject({ status: 'Succeeded', result: 42 });
      } else if (outcome.sessionState === 'restarted') {
        expect(await run(session, code.resultInt)).toMatchObject({ status: 'Succeeded', result: 42 });
      } else {
        await expectRunsNothing(session);
      }
      await destroy(session);
    }

    /** A lost session runs nothing more: execute rejects, or reports the session lost again. */
    async function expectRunsNothing(session: BackendSession): Promise<void> {
      const after: unknown = await run(session, code.resultInt).catch((error: unknown) => error);
      if (SandpoolError.is(after)) return;
      expect(after).toMatchObject({ status: 'Failed', sessionState: 'lost' });
    }

    test('timeout', 'interrupts an endless loop at the time limit and says what became of the session', () =>
      expectInterrupted(code.infiniteLoop),
    );

    test('timeoutFinally', 'interrupts an endless loop whose finally block is endless too', () =>
      expectInterrupted(code.infiniteLoopWithFinally),
    );

    test('outputCap', 'cuts output at the cap and marks it', async () => {
      const session = await create();
      const outcome = await run(session, code.bigOutput, { outputMaxBytes: OUTPUT_CAP });
      expect(outcome.status).toBe('Succeeded');
      expect(outcome.stdoutTruncated).toBe(true);
      expect(outcome.stdout).toMatch(/truncated/i);
      expect(Buffer.byteLength(outcome.stdout)).toBeLessThan(OUTPUT_CAP + 200);
      expect(outcome.stdout.startsWith('x'.repeat(OUTPUT_CAP / 2))).toBe(true);
      const small = await run(session, code.stdout, { outputMaxBytes: OUTPUT_CAP });
      expect(small.stdoutTruncated ?? false).toBe(false);
      await destroy(session);
    });

    test('memory', 'fails a memory bomb at the session limit without harming the host or other sessions', async () => {
      const bystander = await create();
      await run(bystander, code.setVar);
      const session = await create();
      const outcome = await run(session, code.memoryBomb, { timeoutMs: Math.max(executionMs, 20_000) });
      expect(outcome.status).toBe('Failed');
      expect(outcome.stderr.length).toBeGreaterThan(0);
      expect(['kept', 'restarted', 'lost']).toContain(outcome.sessionState);
      expect(await run(bystander, code.readVar)).toMatchObject({ status: 'Succeeded', result: 42 });
      await destroy(session);
      await destroy(bystander);
    });

    test('isolation', 'keeps globals of one session invisible to another', async () => {
      const a = await create();
      const b = await create();
      expect((await run(a, code.setSecret)).status).toBe('Succeeded');
      expect((await run(a, code.probeSecret)).result).toBe('present');
      expect((await run(b, code.probeSecret)).result).toBe('missing');
      await destroy(a);
      expect((await run(b, code.probeSecret)).result).toBe('missing');
      const c = await create();
      expect((await run(c, code.probeSecret)).result).toBe('missing');
      await destroy(b);
      await destroy(c);
    });

    test('destroyed', 'rejects executions on a destroyed session with a SandpoolError', async () => {
      const session = await create();
      await destroy(session);
      const error = await rejection(run(session, code.resultInt));
      expect(SandpoolError.is(error)).toBe(true);
    });

    test('destroyWhileRunning', 'ends a running execution promptly when its session is destroyed', async () => {
      const session = await create();
      const running = run(session, code.longWait, { timeoutMs: 150_000 }).catch((error: unknown) => error);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const started = performance.now();
      await destroy(session);
      const ended: unknown = await running;
      // Far inside the two-minute wait: the destroy ended it, not the time limit.
      expect(performance.now() - started).toBeLessThan(30_000);
      if (!SandpoolError.is(ended)) expect(ended).toMatchObject({ status: 'Failed' });
      expect(SandpoolError.is(await rejection(run(session, code.resultInt)))).toBe(true);
    });

    test('rejections', 'rejects what it cannot run with SandpoolErrors only', async () => {
      const unknown = await rejection(run({ id: 'conf-no-such-session' }, code.resultInt));
      expect(SandpoolError.is(unknown)).toBe(true);
      const other = (['python', 'javascript', 'shell'] as const).find((l) => !backend.capabilities.languages.includes(l));
      if (other !== undefined) {
        const session = await create();
        const wrongLanguage = await rejection(
          backend.execute(session, { language: other, code: '1', timeoutMs: 1000, outputMaxBytes: 1000 }),
        );
        expect(SandpoolError.is(wrongLanguage)).toBe(true);
        await destroy(session);
      }
    });

    test('streaming', 'streams output while the code runs; the pieces join to the final streams, cap included', async () => {
      const session = await create();
      const seen: Array<{ chunk: OutputChunk; at: number }> = [];
      const onOutput = (chunk: OutputChunk): void => void seen.push({ chunk, at: performance.now() });
      const outcome = await backend.execute(
        session,
        { language: options.language, code: code.streamed, timeoutMs: executionMs, outputMaxBytes: 1 << 20 },
        { onOutput },
      );
      const ended = performance.now();
      expect(outcome).toMatchObject({ status: 'Succeeded', stdout: 'first\nsecond\n' });
      const text = (type: 'stdout' | 'stderr') => seen.map((s) => (s.chunk.type === type ? s.chunk.text : '')).join('');
      expect(text('stdout')).toBe(outcome.stdout);
      const first = seen[0]!;
      expect(first.chunk).toEqual({ type: 'stdout', text: 'first\n' });
      // The code waits a second after "first": it must arrive well before the end (a loaded host
      // may stall a little between the print and its delivery).
      expect(ended - first.at).toBeGreaterThan(500);
      seen.length = 0;
      const capped = await backend.execute(
        session,
        { language: options.language, code: code.bigOutput, timeoutMs: executionMs, outputMaxBytes: OUTPUT_CAP },
        { onOutput },
      );
      expect(capped.stdoutTruncated).toBe(true);
      expect(text('stdout')).toBe(capped.stdout);
      expect(text('stderr')).toBe(capped.stderr);
      await destroy(session);
    });

    test('environment', 'binds variables to a session and to one execution, and no other session sees them', async () => {
      if (backend.setEnvironment === undefined) throw new Error(`${backend.name} has no setEnvironment`);
      const session = await create();
      expect((await run(session, code.readEnv)).result).toBe('');
      await backend.setEnvironment(session, { SANDPOOL_CONF_ENV: 'bound' });
      expect((await run(session, code.readEnv)).result).toBe('bound');
      expect((await run(session, code.readEnv, { env: { SANDPOOL_CONF_ENV: 'once' } })).result).toBe('once');
      expect((await run(session, code.readEnv)).result).toBe('bound');
      const other = await create();
      expect((await run(other, code.readEnv)).result).toBe('');
      await destroy(session);
      await destroy(other);
    });

    test('ordering', 'gets executions of one session one at a time, in call order, from the pool', async () => {
      // The pool keeps a session's executions in order (src/backend.ts); the backend is only
      // watched: how many executions of one session does it ever see at once?
      let running = 0;
      let most = 0;
      const watched: Backend = {
        name: backend.name,
        capabilities: backend.capabilities,
        files: backend.files,
        prepare: async (context) => await backend.prepare?.(context),
        create: (sessionSpec, createOptions) => backend.create(sessionSpec, createOptions),
        execute: async (session, request, executeOptions) => {
          running += 1;
          most = Math.max(most, running);
          try {
            return await backend.execute(session, request, executeOptions);
          } finally {
            running -= 1;
          }
        },
        destroy: (session, destroyOptions) => backend.destroy(session, destroyOptions),
        close: async () => undefined,
      };
      const pool = new SessionPool({
        name: 'conformance-ordering',
        backend: watched,
        containerType: options.containerType,
        limits,
        readySessionInstances: 1,
        maxConcurrentSessions: 1,
      });
      try {
        const session = await pool.acquire('conformance-ordering');
        const results = await Promise.all(Array.from({ length: 5 }, () => session.execute({ code: code.increment })));
        expect(results.map((r) => r.result)).toEqual([1, 2, 3, 4, 5]);
        expect(most).toBe(1);
      } finally {
        await pool.close();
      }
      // Called directly, overlapping: a backend may refuse the second call, never interleave it.
      const direct = await create();
      const both = await Promise.allSettled([run(direct, code.increment), run(direct, code.increment)]);
      for (const r of both) if (r.status === 'rejected') expect(SandpoolError.is(r.reason)).toBe(true);
      const counted = both.flatMap((r) => (r.status === 'fulfilled' ? [r.value.result] : []));
      expect(counted).toEqual(counted.map((_, i) => i + 1));
      await destroy(direct);
    });

    registerPauseCases({
      backend: () => backend,
      language: options.language,
      spec,
      create,
      destroy,
      track: (session) => live.add(session),
      run: (session, source) => run(session, source),
      test: (id, title, fn) => test(id, title, fn, testMs * 2),
    });
  });
}
