/**
 * Interpreter-level checkpoints through the real agent (host Python with dill, host Node.js):
 * state written by one agent is loaded by another, what cannot be kept is named, forks reseed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { checkpointToFile, restoreFromFile, type StateSocket } from '../../backends/support/agent-client/index.js';
import { PYTHON, run, startAgent, type AgentHarness } from './agent-harness.js';

const hasDill = spawnSync(PYTHON, ['-c', 'import dill, numpy, pandas'], { stdio: 'ignore' }).status === 0;
const hasNode = spawnSync('node', ['--version'], { stdio: 'ignore' }).status === 0;

describe.skipIf(!hasDill)('agent checkpoint and restore', () => {
  let source: AgentHarness;
  let dir: string;
  const file = () => path.join(dir, 'state.bin');
  const socket = (name: string): StateSocket => {
    const p = path.join(dir, `${name}.sock`);
    return { hostPath: p, agentPath: p, grant: () => undefined };
  };

  beforeAll(async () => {
    source = await startAgent({ transport: 'unix', preload: ['numpy', 'pandas'] });
    dir = mkdtempSync(path.join(tmpdir(), 'sandpool-ckpt-test-'));
    const setup = [
      'import numpy as np, pandas as pd, random, socket, threading, time',
      'x = 41',
      'def plus(a): return a + x',
      'class Box:',
      '    def __init__(self, v): self.v = v',
      '    def twice(self): return self.v * 2',
      'box = Box(21)',
      'shared = [1, 2]; alias = shared',
      'df = pd.DataFrame({"a": np.arange(1000), "b": np.arange(1000) * 0.5})',
      'gen = (i for i in range(3))',
      'sock = socket.socket()',
      'threading.Thread(target=lambda: time.sleep(60), name="sleeper", daemon=True).start()',
      'random.seed(7); np.random.seed(7)',
      'import os; os.environ["MY_SETTING"] = "on"; os.makedirs("notes", exist_ok=True)',
      'with open("notes/today.txt", "w") as f: f.write("kept")',
    ].join('\n');
    const outcome = await source.client.execute(run(setup));
    expect(outcome.stderr).toBe('');
    if (hasNode) {
      const js = await source.client.execute(
        run(
          'var counter = 3; const cfg = { deep: [1, { two: 2 }], when: new Date(0) }; function inc(n) { return n + counter; }\nclass Pt { constructor() { this.x = 1 } }\nconst pt = new Pt();',
          {
            language: 'javascript',
          },
        ),
      );
      expect(js.status).toBe('Succeeded');
    }
  }, 120_000);

  afterAll(async () => {
    await source?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('writes the state as raw bytes, names what it cannot keep, and a second agent loads it', async () => {
    const { report, bytes } = await checkpointToFile(source.client, socket('out'), file(), {
      maxBytes: 1 << 30,
      timeoutMs: 60_000,
    });
    expect(bytes).toBe(statSync(file()).size);
    expect(statSync(file()).mode & 0o777).toBe(0o600);
    expect(report.files).toBeGreaterThanOrEqual(2); // notes/ and notes/today.txt
    const lost = report.lost.map((l) => `${l.language}:${l.name}:${l.type}`);
    expect(lost).toEqual(expect.arrayContaining(['python:gen:generator', 'python:sock:socket', 'python:sleeper:thread']));
    if (hasNode) expect(lost).toEqual(expect.arrayContaining([expect.stringMatching(/^javascript:pt:object/)]));
    expect(report.lost.find((l) => l.name === 'sock')?.reason).toMatch(/socket/);

    const target = await startAgent({ transport: 'unix', preload: ['numpy', 'pandas'] });
    try {
      const restored = await restoreFromFile(target.client, socket('in'), file(), { fork: false, timeoutMs: 60_000 });
      expect(restored.files).toBe(report.files);
      const check = await target.client.execute(
        run(
          [
            'assert plus(1) == 42 and box.twice() == 42 and isinstance(box, Box)',
            'assert alias is shared and df["b"].sum() == 249750.0',
            'assert os.environ["MY_SETTING"] == "on" and open("notes/today.txt").read() == "kept"',
            'x = 100; assert plus(1) == 101  # functions see the restored namespace',
            '(random.random(), float(np.random.rand()))',
          ].join('\n'),
        ),
      );
      expect(check.stderr).toBe('');
      // Resume (not a fork) continues the RNG sequences where the checkpoint left them.
      const expected = await source.client.execute(run('(random.random(), float(np.random.rand()))'));
      expect(check.result).toBe(expected.result);
      if (hasNode) {
        const js = await target.client.execute(
          run(
            '[inc(1), cfg.deep[1].two, cfg.when instanceof Date, Array.isArray(cfg.deep) && cfg.deep instanceof Array].join()',
            { language: 'javascript' },
          ),
        );
        expect(js.result).toBe('4,2,true,true');
      }
    } finally {
      await target.close();
    }
  }, 120_000);

  it('reseeds random generators in forks: two forks draw different numbers', async () => {
    await source.client.execute(run('rng = np.random.default_rng(1); r = random.Random(1)'));
    rmSync(file(), { force: true });
    await checkpointToFile(source.client, socket('out'), file(), { maxBytes: 1 << 30, timeoutMs: 60_000 });
    const draws: unknown[] = [];
    for (const name of ['fork-a', 'fork-b']) {
      const fork = await startAgent({ transport: 'unix', preload: ['numpy', 'pandas'] });
      try {
        await restoreFromFile(fork.client, socket(name), file(), { fork: true, timeoutMs: 60_000 });
        const outcome = await fork.client.execute(
          run('(random.random(), float(np.random.rand()), float(rng.random()), r.random())'),
        );
        draws.push(outcome.result);
      } finally {
        await fork.close();
      }
    }
    expect(draws[0]).not.toBe(draws[1]);
    for (const part of String(draws[0]).slice(1, -1).split(', ')) expect(String(draws[1])).not.toContain(part);
  }, 120_000);

  it('refuses a checkpoint over its byte limit, and fails a restore of a corrupt or missing file clearly', async () => {
    const big = path.join(dir, 'big.bin');
    await expect(checkpointToFile(source.client, socket('cap'), big, { maxBytes: 1000, timeoutMs: 60_000 })).rejects.toThrow(
      /exceeds its limit/,
    );
    const corrupt = path.join(dir, 'corrupt.bin');
    writeFileSync(corrupt, Buffer.concat([Buffer.from('SPCK\x01P\0\0\0\x06python'), Buffer.from('D\0\0\0\x04junk')]));
    const target = await startAgent({ transport: 'unix', preload: [] });
    try {
      await expect(restoreFromFile(target.client, socket('bad'), corrupt, { fork: false, timeoutMs: 30_000 })).rejects.toThrow(
        /truncated|corrupt|pickle|restore/i,
      );
      await expect(
        restoreFromFile(target.client, socket('none'), path.join(dir, 'missing.bin'), { fork: false, timeoutMs: 30_000 }),
      ).rejects.toThrow(/cannot be read/);
      // The agent and its kernel still serve the session afterwards.
      expect((await target.client.execute(run('1 + 1'))).result).toBe(2);
      expect(existsSync(path.join(dir, 'bad.sock'))).toBe(false);
    } finally {
      await target.close();
    }
  }, 120_000);
});
