/** isolated-vm backend: JavaScript semantics, options and native-addon loading. */

import { describe, expect, it } from 'vitest';

import { IsolatedVMBackend } from '../../backends/isolated-vm/index.js';
import { ErrorCode, InvalidOptionsError, SandpoolError } from '../../src/errors.js';
import { NetworkPolicySchema, SessionLimitsSchema } from '../../src/options.js';
import { defineJsSemantics } from '../suites/js-semantics.js';

defineJsSemantics('isolated-vm', () => new IsolatedVMBackend());

describe('IsolatedVMBackend', () => {
  it('validates its options', () => {
    expect(() => new IsolatedVMBackend({ modulePath: '' })).toThrow(InvalidOptionsError);
    expect(() => new IsolatedVMBackend({ nope: 1 } as never)).toThrow(/nope/);
  });

  it('reports an addon that cannot load as BACKEND_UNAVAILABLE with a rebuild hint', async () => {
    const backend = new IsolatedVMBackend({ modulePath: '/nonexistent/isolated-vm' });
    const error = await backend.prepare().catch((e: unknown) => e);
    expect(SandpoolError.is(error)).toBe(true);
    expect((error as SandpoolError).code).toBe(ErrorCode.BACKEND_UNAVAILABLE);
    expect((error as Error).message).toMatch(/npm rebuild isolated-vm/);
    const limits = SessionLimitsSchema.parse({});
    const created = await backend
      .create(
        {
          sessionId: 'x-1',
          poolName: 'p',
          ownerId: 'o',
          containerType: 'NodeLTS',
          limits,
          network: NetworkPolicySchema.parse({}),
        },
        { onExit: () => undefined },
      )
      .catch((e: unknown) => e);
    expect((created as SandpoolError).code).toBe(ErrorCode.BACKEND_UNAVAILABLE);
    await backend.close();
  });

  it('interrupts a busy isolate at once when its session is destroyed', async () => {
    const backend = new IsolatedVMBackend();
    const limits = SessionLimitsSchema.parse({ memoryMb: 32 });
    const session = await backend.create(
      {
        sessionId: 'busy-1',
        poolName: 'p',
        ownerId: 'o',
        containerType: 'NodeLTS',
        limits,
        network: NetworkPolicySchema.parse({}),
      },
      { onExit: () => undefined },
    );
    const running = backend
      .execute(session, { language: 'javascript', code: 'while (true) {}', timeoutMs: 30_000, outputMaxBytes: 1024 })
      .catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = performance.now();
    await backend.destroy(session, { reason: 'stopped' });
    const outcome = await running;
    expect(performance.now() - started).toBeLessThan(2000);
    expect(SandpoolError.is(outcome)).toBe(true);
    await backend.close();
  });
});
