/** QuickJS backend: JavaScript semantics, options and QuickJS-specific limits. */

import { describe, expect, it } from 'vitest';

import { QuickJSBackend } from '../../backends/quickjs/index.js';
import { ErrorCode, InvalidOptionsError } from '../../src/errors.js';
import { NetworkPolicySchema, SessionLimitsSchema } from '../../src/options.js';
import { defineJsSemantics } from '../suites/js-semantics.js';

defineJsSemantics('quickjs', () => new QuickJSBackend());

describe('QuickJSBackend', () => {
  it('validates its options with typed errors naming every problem', () => {
    expect(() => new QuickJSBackend({ maxStackSizeBytes: 1 })).toThrow(InvalidOptionsError);
    try {
      new QuickJSBackend({ maxStackSizeBytes: 1, bogus: true } as never);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect((error as InvalidOptionsError).code).toBe(ErrorCode.INVALID_OPTIONS);
      expect((error as Error).message).toMatch(/maxStackSizeBytes/);
      expect((error as Error).message).toMatch(/bogus/);
    }
  });

  it('declares in-process isolate capabilities', () => {
    expect(new QuickJSBackend().capabilities).toMatchObject({
      containerTypes: ['NodeLTS'],
      languages: ['javascript'],
      isolation: 'isolate',
      inProcess: true,
      files: false,
      network: false,
      snapshots: false,
      httpForwarding: false,
    });
  });

  it('refuses cells nested deeper than maxSyntaxDepth before QuickJS parses them', async () => {
    const backend = new QuickJSBackend({ maxSyntaxDepth: 50 });
    const limits = SessionLimitsSchema.parse({ memoryMb: 32 });
    const session = await backend.create(
      {
        sessionId: 'depth-1',
        poolName: 'p',
        ownerId: 'o',
        containerType: 'NodeLTS',
        limits,
        network: NetworkPolicySchema.parse({}),
      },
      { onExit: () => undefined },
    );
    const run = (code: string) =>
      backend.execute(session, { language: 'javascript', code, timeoutMs: 5000, outputMaxBytes: 4096 });
    const deep = await run('['.repeat(60) + ']'.repeat(60));
    expect(deep.status).toBe('Failed');
    expect(deep.stderr).toMatch(/nests too deeply/);
    expect(await run(`${'['.repeat(20) + ']'.repeat(20)}.length`)).toMatchObject({ status: 'Succeeded', result: 1 });
    const viaEval = await run("eval('['.repeat(60) + ']'.repeat(60))");
    expect(viaEval.stderr).toMatch(/SyntaxError: the code nests too deeply/);
    const huge = await run("eval('1;'.repeat(2_200_000))");
    expect(huge.stderr).toMatch(/SyntaxError: source too large to compile at run time/);
    expect(await run("eval('20 + 22')")).toMatchObject({ status: 'Succeeded', result: 42 });
    await backend.close();
  });

  it('charges a session for the shared memory it grows, failing it at its own limit', async () => {
    const backend = new QuickJSBackend();
    const limits = SessionLimitsSchema.parse({ memoryMb: 32 });
    const network = NetworkPolicySchema.parse({});
    const make = (id: string) =>
      backend.create(
        { sessionId: id, poolName: 'p', ownerId: 'o', containerType: 'NodeLTS', limits, network },
        { onExit: () => undefined },
      );
    const bystander = await make('mem-b');
    await backend.execute(bystander, { language: 'javascript', code: 'var keep = 41', timeoutMs: 5000, outputMaxBytes: 4096 });
    const bomber = await make('mem-a');
    const started = performance.now();
    const outcome = await backend.execute(bomber, {
      language: 'javascript',
      code: "var hog = []; for (;;) hog.push('x'.repeat(1 << 20) + hog.length)",
      timeoutMs: 60_000,
      outputMaxBytes: 4096,
    });
    expect(outcome).toMatchObject({ status: 'Failed', sessionState: 'lost' });
    expect(outcome.stderr).toMatch(/out of memory/);
    // Well before the 60 s deadline: the growth cap, not the clock, stopped it.
    expect(performance.now() - started).toBeLessThan(30_000);
    const after = await backend.execute(bystander, {
      language: 'javascript',
      code: 'keep + 1',
      timeoutMs: 5000,
      outputMaxBytes: 4096,
    });
    expect(after.result).toBe(42);
    await backend.close();
  }, 60_000);

  it('moves new sessions to a fresh module when the shared one is full, keeping the old sessions', async () => {
    const backend = new QuickJSBackend({ maxModuleMemoryMb: 64, recycleModuleAboveMb: 2048 });
    const limits = SessionLimitsSchema.parse({ memoryMb: 16 });
    const network = NetworkPolicySchema.parse({});
    const sessions = [];
    // About 80 KiB each: 64 MiB holds several hundred, so this crosses into a second module.
    for (let i = 0; i < 1200; i++) {
      sessions.push(
        await backend.create(
          { sessionId: `full-${i}`, poolName: 'p', ownerId: 'o', containerType: 'NodeLTS', limits, network },
          { onExit: () => undefined },
        ),
      );
    }
    for (const session of [sessions[0]!, sessions[sessions.length - 1]!]) {
      expect(
        await backend.execute(session, { language: 'javascript', code: '6 * 7', timeoutMs: 5000, outputMaxBytes: 100 }),
      ).toMatchObject({
        status: 'Succeeded',
        result: 42,
      });
    }
    await backend.close();
  }, 120_000);
});
