/**
 * Runs the isolate attacks (isolate-attacks.ts) against an in-process JavaScript backend. After
 * every attack: the host's own globals are untouched, the attacked session still runs code (or
 * honestly reported itself lost), a bystander session created before the attack kept its state,
 * and a brand-new session works.
 */

import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Backend, BackendSession, ExecutionOutcome, SessionSpec } from '../../src/backend.js';
import { NetworkPolicySchema, SessionLimitsSchema } from '../../src/options.js';
import { ISOLATE_ATTACKS } from './isolate-attacks.js';

export interface IsolateAttackOptions {
  readonly makeBackend: () => Backend | Promise<Backend>;
  /** Attack ids to skip, with the reason. */
  readonly skip?: Readonly<Record<string, string>>;
  /** Memory limit of every session (small: the memory bombs reach it sooner). @default 32 */
  readonly memoryMb?: number;
}

export function defineIsolateAttacks(name: string, options: IsolateAttackOptions): void {
  const limits = SessionLimitsSchema.parse({ memoryMb: options.memoryMb ?? 32 });
  const network = NetworkPolicySchema.parse({});

  describe(`isolate attacks: ${name}`, () => {
    let backend: Backend;
    let bystander: BackendSession;
    const live = new Set<BackendSession>();

    const spec = (): SessionSpec => ({
      sessionId: `atk-${randomBytes(6).toString('hex')}`,
      poolName: 'attacks',
      ownerId: `attacks-${process.pid}`,
      containerType: 'NodeLTS',
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

    const run = (
      session: BackendSession,
      code: string,
      timeoutMs = 10_000,
      outputMaxBytes = 64 * 1024,
    ): Promise<ExecutionOutcome> => backend.execute(session, { language: 'javascript', code, timeoutMs, outputMaxBytes });

    beforeAll(async () => {
      backend = await options.makeBackend();
      bystander = await create();
      expect((await run(bystander, 'var x = 41')).status).toBe('Succeeded');
    }, 60_000);

    afterAll(async () => {
      for (const session of live) await backend.destroy(session, { reason: 'poolClosed' }).catch(() => undefined);
      await backend?.close();
    }, 60_000);

    for (const attack of ISOLATE_ATTACKS) {
      const reason = options.skip?.[attack.id];
      if (reason !== undefined) {
        it.skip(`${attack.title} (skipped: ${reason})`, () => undefined);
        continue;
      }
      it(
        attack.title,
        async () => {
          const session = await create();
          let lost = false;
          for (const step of attack.steps) {
            if (step.delayMs !== undefined) await new Promise((resolve) => setTimeout(resolve, step.delayMs));
            const outcome = await run(session, step.code, step.timeoutMs, step.outputMaxBytes);
            step.check?.(outcome);
            expect(['kept', 'restarted', 'lost']).toContain(outcome.sessionState);
            if (outcome.sessionState === 'lost') {
              lost = true;
              break;
            }
          }

          // The host: nothing leaked into this realm.
          expect((globalThis as Record<string, unknown>)['sandpoolPwned']).toBeUndefined();
          expect(({} as Record<string, unknown>)['sandpoolPwned']).toBeUndefined();
          expect([1, 2].join('-')).toBe('1-2');
          expect(JSON.stringify({ a: 1 })).toBe('{"a":1}');

          // The attacked session: usable, or honestly lost (an isolate left at its memory limit by
          // the attack may only find out on its next execution, and must say so then).
          if (!lost) {
            const after = await run(session, '1 + 1');
            if (after.sessionState === 'lost') lost = true;
            else expect(after).toMatchObject({ status: 'Succeeded', result: 2 });
          }
          // A lost isolate is disposed at once: it runs nothing more.
          if (lost) await expect(run(session, '1 + 1')).rejects.toMatchObject({ code: 'SANDPOOL_SESSION_NOT_FOUND' });
          await destroy(session);

          // A bystander made before the attack, and a fresh session.
          expect(await run(bystander, 'x + 1')).toMatchObject({ status: 'Succeeded', result: 42 });
          const fresh = await create();
          expect(await run(fresh, '6 * 7')).toMatchObject({ status: 'Succeeded', result: 42 });
          await destroy(fresh);
        },
        attack.testMs ?? 60_000,
      );
    }
  });
}
