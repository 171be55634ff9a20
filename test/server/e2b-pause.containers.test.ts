/**
 * E2B's pause and resume through the real SDK, on sandpool's interpreter-level pause of container
 * sessions: state and files survive, a paused sandbox is listed as paused and answers as not
 * running until `connect` resumes it (or any traffic does, with `autoResume`), and `onTimeout:
 * 'pause'` pauses instead of ending it.
 */

import { Sandbox } from '@e2b/code-interpreter';
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

const pythonPool = () => h.server.pools().find((p) => p.name === 'python')!;

describe.skipIf(!containers)('E2B pause and resume', () => {
  test('pause frees the session; connect resumes it with its variables and files', async () => {
    const sbx = await Sandbox.create({ metadata: { pause: 'yes' } });
    try {
      await sbx.runCode('import pandas as pd\ndf = pd.DataFrame({"a": [1, 2, 3]})\nx = 41');
      await sbx.files.write('kept.txt', 'on disk');
      const allocated = pythonPool().stats().allocated;
      expect(await sbx.pause()).toBe(true);
      expect(pythonPool().stats().allocated).toBe(allocated - 1);
      expect(await sbx.pause()).toBe(false); // already paused
      expect((await sbx.getInfo()).state).toBe('paused');
      const paused = await Sandbox.list({ query: { state: ['paused'], metadata: { pause: 'yes' } } }).nextItems();
      expect(paused.map((s) => s.sandboxId)).toEqual([sbx.sandboxId]);
      expect(await Sandbox.list({ query: { state: ['running'], metadata: { pause: 'yes' } } }).nextItems()).toEqual([]);
      // Not running, and traffic does not wake it (no autoResume): the SDK's timeout error.
      expect(await sbx.isRunning()).toBe(false);
      await expect(sbx.runCode('x')).rejects.toThrow(/paused/);

      const resumed = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 120_000 });
      expect(await resumed.isRunning()).toBe(true);
      expect((await resumed.runCode('x + int(df["a"].sum())')).text).toBe('47');
      expect(await resumed.files.read('kept.txt')).toBe('on disk');
      const info = await resumed.getInfo();
      expect(info.state).toBe('running');
      expect(info.endAt.getTime()).toBeGreaterThan(Date.now() + 100_000);
    } finally {
      await sbx.kill();
    }
  }, 180_000);

  test('with autoResume, traffic resumes a paused sandbox; onTimeout pause pauses at the deadline', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 3_000, lifecycle: { onTimeout: 'pause', autoResume: true } });
    try {
      await sbx.runCode('y = 6 * 7');
      await expect.poll(async () => (await sbx.getInfo()).state, { timeout: 30_000, interval: 500 }).toBe('paused');
      expect((await sbx.runCode('y')).text).toBe('42');
      expect((await sbx.getInfo()).state).toBe('running');
    } finally {
      await sbx.kill();
    }
    await expect(Sandbox.getInfo(sbx.sandboxId)).rejects.toThrow(/not found/);
  }, 180_000);
});
