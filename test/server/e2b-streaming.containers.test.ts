/**
 * The real E2B SDKs against sandpool: output that streams while code and commands run, environment
 * variables at create and per call, background commands (list, connect, kill), and a client that
 * gives up interrupting its cell without losing the sandbox.
 */

import { CommandExitError, Sandbox, TimeoutError } from '@e2b/code-interpreter';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { startE2bServer } from './e2b-harness.js';
import { containerBackendAvailable, type Harness } from './helpers.js';

const containers = await containerBackendAvailable();

let h: Harness;

beforeAll(async () => {
  if (!containers) return;
  ({ h } = await startE2bServer());
}, 180_000);

afterAll(async () => {
  await h?.close();
}, 60_000);

const seconds = (from: number): number => (performance.now() - from) / 1000;

describe.skipIf(!containers)('E2B streaming, environment and commands', () => {
  test('runCode streams stdout and figures while the cell runs; the traceback is the error, not stderr', async () => {
    const sbx = await Sandbox.create();
    try {
      const started = performance.now();
      const arrivals: number[] = [];
      const figures: number[] = [];
      const run = await sbx.runCode(
        [
          'import time, sys',
          'import matplotlib.pyplot as plt',
          'for i in range(3):',
          '    print(i, flush=True)',
          '    time.sleep(1)',
          'plt.plot([1, 2]); plt.show()',
          'print("careful", file=sys.stderr)',
          'time.sleep(1)',
          'raise ValueError("late")',
        ].join('\n'),
        {
          onStdout: () => void arrivals.push(seconds(started)),
          onResult: (r) => void (r.png !== undefined && figures.push(seconds(started))),
        },
      );
      const ended = seconds(started);
      expect(run.logs.stdout.join('')).toBe('0\n1\n2\n');
      // The first line came while the cell still had seconds to run.
      expect(ended - arrivals[0]!).toBeGreaterThan(2.5);
      expect(figures).toHaveLength(1);
      expect(ended - figures[0]!).toBeGreaterThan(0.8);
      expect(run.logs.stderr.join('')).toBe('careful\n');
      expect(run.error).toMatchObject({ name: 'ValueError', value: 'late' });
      expect(run.error?.traceback).toContain('raise ValueError("late")');
    } finally {
      await sbx.kill();
    }
  }, 120_000);

  test('commands stream stdout as it is written; background commands can be listed, reconnected and killed', async () => {
    const sbx = await Sandbox.create();
    try {
      const started = performance.now();
      const arrivals: number[] = [];
      const done = await sbx.commands.run('for i in 1 2 3; do echo "line $i"; sleep 1; done', {
        onStdout: () => void arrivals.push(seconds(started)),
      });
      expect(done.stdout).toBe('line 1\nline 2\nline 3\n');
      expect(seconds(started) - arrivals[0]!).toBeGreaterThan(1.5);

      const ticker = await sbx.commands.run('for i in 1 2 3 4; do echo "tick $i"; sleep 1; done', { background: true });
      const listed = await sbx.commands.list();
      expect(listed.map((p) => p.pid)).toContain(ticker.pid);
      expect(listed.find((p) => p.pid === ticker.pid)?.args).toEqual([
        '-l',
        '-c',
        'for i in 1 2 3 4; do echo "tick $i"; sleep 1; done',
      ]);
      const later: string[] = [];
      const again = await sbx.commands.connect(ticker.pid, { onStdout: (d) => void later.push(d) });
      const result = await again.wait();
      expect(result.exitCode).toBe(0);
      expect(later.join('')).toMatch(/tick 4\n$/);
      expect((await ticker.wait()).stdout).toBe('tick 1\ntick 2\ntick 3\ntick 4\n');

      const sleeper = await sbx.commands.run('sleep 60', { background: true });
      expect(await sbx.commands.kill(sleeper.pid)).toBe(true);
      const killed = await sleeper.wait().catch((e: unknown) => e);
      expect(killed).toBeInstanceOf(CommandExitError);
      expect((killed as CommandExitError).exitCode).toBe(-1);
      expect(await sbx.commands.kill(sleeper.pid)).toBe(false);
      // The sandbox outlives the killed command, at once.
      const after = performance.now();
      expect((await sbx.commands.run('echo still here')).stdout).toBe('still here\n');
      expect(seconds(after)).toBeLessThan(10);
    } finally {
      await sbx.kill();
    }
  }, 120_000);

  test('environment variables at create reach code and commands; per-call ones only that call', async () => {
    const secret = `s3cr3t-${Date.now()}`;
    const sbx = await Sandbox.create({ envs: { E2B_TEST_SECRET: secret } });
    try {
      expect((await sbx.runCode('import os\nos.environ["E2B_TEST_SECRET"]')).text).toBe(secret);
      expect((await sbx.commands.run('echo "$E2B_TEST_SECRET"')).stdout).toBe(`${secret}\n`);
      expect((await sbx.runCode('os.environ.get("ONCE")', { envs: { ONCE: 'yes' } })).text).toBe('yes');
      expect((await sbx.runCode('os.environ.get("ONCE", "gone")')).text).toBe('gone');
      expect((await sbx.commands.run('echo "$ONCE $E2B_TEST_SECRET"', { envs: { ONCE: 'now' } })).stdout).toBe(`now ${secret}\n`);
      expect((await sbx.runCode('process.env.E2B_TEST_SECRET', { language: 'js' })).text).toBe(secret);
    } finally {
      await sbx.kill();
    }
    expect(JSON.stringify(h.logs)).not.toContain(secret);
  }, 120_000);

  test('a client that gives up interrupts its cell; the sandbox and its state stay', async () => {
    const sbx = await Sandbox.create();
    try {
      await sbx.runCode('x = 41');
      const started = performance.now();
      await expect(sbx.runCode('import time\ntime.sleep(60)', { timeoutMs: 1_500 })).rejects.toBeInstanceOf(TimeoutError);
      expect((await sbx.runCode('x + 1')).text).toBe('42');
      expect(seconds(started)).toBeLessThan(15);
    } finally {
      await sbx.kill();
    }
  }, 120_000);
});
