/**
 * Pause, resume and fork cases of the backend conformance suite (registered by
 * defineBackendConformance). A backend with `capabilities.pause` of `interpreter` or `machine`
 * must pass them; one without (the isolates) must not offer `checkpoint`/`restore` at all, and the
 * cases are skipped by capability. Through the backend contract only: checkpoint into a directory,
 * destroy, restore (into a fresh Ready session for interpreter-level checkpoints, as a new session
 * for machine-level ones), fork (two restores of one checkpoint while the source keeps running).
 */

import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect, it, type TestContext } from 'vitest';

import type { Backend, BackendSession, Checkpoint, ExecutionOutcome, Language, SessionSpec } from '../../src/backend.js';
import { SandpoolError } from '../../src/errors.js';

interface PauseSnippets {
  /** Defines `x` = 41, a function `plus(a)` = a + x, and `unkeepable`, which an interpreter-level checkpoint cannot keep. */
  readonly setup: string;
  /** `plus(1)`: 42 after a faithful restore. */
  readonly check: string;
  /** A fresh random float in [0, 1). */
  readonly random: string;
  /** Sets `x` = 1000 (a fork's change, invisible to its parent). */
  readonly change: string;
}

const SNIPPETS: Partial<Record<Language, PauseSnippets>> = {
  python: {
    setup: 'import random\nx = 41\ndef plus(a):\n    return a + x\nunkeepable = (i for i in range(3))',
    check: 'plus(1)',
    random: 'random.random()',
    change: 'x = 1000',
  },
  javascript: {
    setup: 'var x = 41; function plus(a) { return a + x } var unkeepable = new (class Opaque {})();',
    check: 'plus(1)',
    random: 'Math.random()',
    change: 'x = 1000',
  },
};

export interface PauseCaseContext {
  readonly backend: () => Backend;
  readonly language: Language;
  readonly spec: () => SessionSpec;
  readonly create: () => Promise<BackendSession>;
  readonly destroy: (session: BackendSession) => Promise<void>;
  readonly track: (session: BackendSession) => void;
  readonly run: (session: BackendSession, code: string) => Promise<ExecutionOutcome>;
  readonly test: (id: 'pause' | 'fork' | 'corruptCheckpoint', title: string, fn: (t: TestContext) => Promise<void>) => void;
}

async function readFile(backend: Backend, session: BackendSession, path: string): Promise<string> {
  const { body } = await backend.files!.download(session, path, {});
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function* bytes(text: string): AsyncIterable<Uint8Array> {
  yield Buffer.from(text);
}

export function registerPauseCases(ctx: PauseCaseContext): void {
  const code = SNIPPETS[ctx.language];
  const dirs: string[] = [];
  const freshDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'sandpool-pause-conf-'));
    dirs.push(dir);
    return dir;
  };
  const level = () => ctx.backend().capabilities.pause ?? 'none';
  /** Skips the running case, visibly, when the backend cannot pause or fork (or the language has no interpreter state). */
  const requirePause = (t: TestContext, fork = false): void => {
    if (code === undefined) t.skip(`no interpreter state to pause in ${ctx.language} sessions`);
    if (level() === 'none') t.skip(`backend "${ctx.backend().name}" cannot pause (capabilities.pause is none)`);
    if (fork && ctx.backend().capabilities.fork !== true) t.skip(`backend "${ctx.backend().name}" cannot fork`);
  };

  async function restore(dir: string, checkpoint: Checkpoint, fork: boolean): Promise<BackendSession> {
    const backend = ctx.backend();
    const into = level() === 'interpreter' ? await ctx.create() : undefined;
    const spec = into === undefined ? ctx.spec() : { ...ctx.spec(), sessionId: into.id };
    const restored = await backend.restore!(spec, { dir, checkpoint, fork, into, onExit: () => undefined });
    ctx.track(restored.session);
    return restored.session;
  }

  it('offers checkpoint and restore exactly when capabilities.pause says so', () => {
    const backend = ctx.backend();
    const offered = level() !== 'none';
    expect(typeof backend.checkpoint === 'function').toBe(offered);
    expect(typeof backend.restore === 'function').toBe(offered);
    if (backend.capabilities.fork === true) expect(offered).toBe(true);
  });

  ctx.test('pause', 'pauses to a directory and resumes with variables, functions and files as they were', async (t) => {
    requirePause(t);
    const backend = ctx.backend();
    const session = await ctx.create();
    expect((await ctx.run(session, code!.setup)).status).toBe('Succeeded');
    if (backend.capabilities.files)
      await backend.files!.upload(session, 'kept/note.txt', bytes('still here'), { maxBytes: 1 << 20 });
    const dir = freshDir();
    const checkpoint = await backend.checkpoint!(session, { dir, maxBytes: 2 ** 32, final: true });
    expect(checkpoint.level).toBe(level());
    expect(checkpoint.bytes).toBeGreaterThan(0);
    if (level() === 'interpreter') expect(checkpoint.lost.map((l) => l.name)).toContain('unkeepable');
    else expect(checkpoint.lost).toEqual([]);
    await ctx.destroy(session);
    const resumed = await restore(dir, checkpoint, false);
    expect(await ctx.run(resumed, code!.check)).toMatchObject({ status: 'Succeeded', result: 42 });
    if (backend.capabilities.files) expect(await readFile(backend, resumed, 'kept/note.txt')).toBe('still here');
    await ctx.destroy(resumed);
  });

  ctx.test(
    'fork',
    'forks: copies share no writable state, draw different random numbers, and the source keeps running',
    async (t) => {
      requirePause(t, true);
      const backend = ctx.backend();
      const source = await ctx.create();
      await ctx.run(source, code!.setup);
      const dir = freshDir();
      const checkpoint = await backend.checkpoint!(source, { dir, maxBytes: 2 ** 32, final: false });
      expect(await ctx.run(source, code!.check)).toMatchObject({ status: 'Succeeded', result: 42 });
      const a = await restore(dir, checkpoint, true);
      const b = await restore(dir, checkpoint, true);
      expect(await ctx.run(a, code!.check)).toMatchObject({ result: 42 });
      const drawA = (await ctx.run(a, code!.random)).result;
      const drawB = (await ctx.run(b, code!.random)).result;
      expect(typeof drawA).toBe('number');
      expect(drawA).not.toBe(drawB);
      await ctx.run(a, code!.change);
      expect((await ctx.run(b, code!.check)).result).toBe(42);
      expect((await ctx.run(source, code!.check)).result).toBe(42);
      if (backend.capabilities.files) {
        await backend.files!.upload(a, 'only-in-a.txt', bytes('a'), { maxBytes: 1024 });
        const names = async (s: BackendSession) =>
          (await backend.files!.list(s, { path: '', recursive: true })).map((f) => f.path);
        expect(await names(a)).toContain('only-in-a.txt');
        expect(await names(b)).not.toContain('only-in-a.txt');
        expect(await names(source)).not.toContain('only-in-a.txt');
      }
      for (const s of [a, b, source]) await ctx.destroy(s);
    },
  );

  ctx.test(
    'corruptCheckpoint',
    'fails the restore of a corrupt or missing checkpoint clearly, harming no other session',
    async (t) => {
      requirePause(t);
      const backend = ctx.backend();
      const bystander = await ctx.create();
      await ctx.run(bystander, code!.setup);
      const source = await ctx.create();
      await ctx.run(source, code!.setup);
      const dir = freshDir();
      const checkpoint = await backend.checkpoint!(source, { dir, maxBytes: 2 ** 32, final: true });
      await ctx.destroy(source);
      const largest = readdirSync(dir)
        .map((name) => join(dir, name))
        .filter((path) => statSync(path).isFile())
        .sort((x, y) => statSync(y).size - statSync(x).size)[0]!;
      writeFileSync(largest, Buffer.alloc(4096, 0x5a));
      const corrupt = await restore(dir, checkpoint, false).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(SandpoolError.is(corrupt)).toBe(true);
      rmSync(dir, { recursive: true, force: true });
      const missing = await restore(dir, checkpoint, false).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(SandpoolError.is(missing)).toBe(true);
      expect(await ctx.run(bystander, code!.check)).toMatchObject({ status: 'Succeeded', result: 42 });
      await ctx.destroy(bystander);
    },
  );

  it('cleans up its checkpoint directories', () => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
}
