/**
 * Pause, resume and fork end to end on real containers through the pool: a Python session with a
 * DataFrame, a function, a class instance, files and an open socket pauses to the pool's data
 * directory (0700/0600, memory given back), resumes transparently with everything but the socket,
 * which is named; idle sessions pause under idleAction "pause"; forks see separate files and draw
 * different random numbers.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { SessionPool, type SessionResumedEvent } from '../../src/index.js';
import { podman, podmanAvailable } from './helpers.js';

describe.skipIf(!podmanAvailable())('container pause and fork through the pool', () => {
  const root = mkdtempSync(join(tmpdir(), 'sandpool-ct-pause-'));
  const dataDirectory = join(root, 'data');
  let pool: SessionPool;
  const resumed: SessionResumedEvent[] = [];

  beforeAll(async () => {
    pool = new SessionPool({
      name: 'ct-pause',
      backend: new ContainerBackend(),
      containerType: 'PythonLTS',
      readySessionInstances: 2,
      limits: { memoryMb: 512 },
      dataDirectory,
    });
    pool.on('sessionResumed', (e) => resumed.push(e));
    await pool.start();
  }, 180_000);

  afterAll(async () => {
    await pool?.close();
    rmSync(root, { recursive: true, force: true });
    expect(podman('ps', '-a', '--filter', 'label=sandpool.pool=ct-pause', '--format', '{{.Names}}')).toBe('');
  }, 120_000);

  it('pauses a Python session to disk and resumes it on the next execution, naming what was lost', async () => {
    const session = await pool.acquire('analyst-1');
    const setup = await session.execute({
      code: [
        'import numpy as np, pandas as pd, socket',
        'df = pd.DataFrame({"a": np.arange(100_000), "b": np.random.rand(100_000)})',
        'def total(): return int(df["a"].sum())',
        'class Counter:',
        '    def __init__(self): self.n = 0',
        '    def bump(self): self.n += 1; return self.n',
        'c = Counter(); c.bump()',
        'sock = socket.socket()',
        'open("notes.txt", "w").write("hello")',
      ].join('\n'),
    });
    expect(setup.stderr).toBe('');
    const containerId = session.info().etag;
    const paused = await session.pause();
    expect(session.state).toBe('Paused');
    expect(paused.lost.map((l) => l.name)).toEqual(['sock']);
    expect(paused.bytes).toBeGreaterThan(800_000); // the DataFrame's 1.6 MB, pickled
    // The container is gone; the checkpoint is private to the server's user.
    expect(podman('ps', '-a', '--filter', `id=${containerId}`, '--format', '{{.ID}}')).toBe('');
    const [entry] = readdirSync(join(dataDirectory, 'paused'));
    expect(statSync(join(dataDirectory, 'paused', entry!)).mode & 0o777).toBe(0o700);
    expect(statSync(join(dataDirectory, 'paused', entry!, 'state.bin')).mode & 0o777).toBe(0o600);
    expect(pool.stats()).toMatchObject({ paused: 1 });

    const after = await session.execute({ code: 'total(), c.bump(), open("notes.txt").read(), "sock" in dir()' });
    expect(after.result).toBe("(4999950000, 2, 'hello', False)");
    expect(session.info().etag).not.toBe(containerId);
    expect(resumed.at(-1)).toMatchObject({ identifier: 'analyst-1', kind: 'resume' });
    expect(resumed.at(-1)!.lost.map((l) => `${l.language}:${l.name}`)).toEqual(['python:sock']);
    expect(readdirSync(join(dataDirectory, 'paused'))).toEqual([]);
  }, 240_000);

  it('forks: separate files, different random numbers, the source untouched', async () => {
    const source = await pool.acquire('forker');
    await source.execute({ code: 'import random\nrandom.seed(5)\nopen("shared.txt", "w").write("base")\nx = 1' });
    const a = await source.fork('forker-a');
    const b = await source.fork('forker-b');
    await a.execute({ code: 'open("shared.txt", "w").write("changed in a")\nx = 2' });
    const readB = await b.execute({ code: 'open("shared.txt").read(), x' });
    expect(readB.result).toBe("('base', 1)");
    expect((await source.execute({ code: 'open("shared.txt").read(), x' })).result).toBe("('base', 1)");
    const drawA = (await a.execute({ code: 'random.random()' })).result;
    const drawB = (await b.execute({ code: 'random.random()' })).result;
    expect(drawA).not.toBe(drawB);
    for (const s of [a, b, source]) await s.stop();
  }, 300_000);
});
