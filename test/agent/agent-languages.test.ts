/** JavaScript and shell executions, matplotlib figures (when the host Python has matplotlib), and
 * readiness with preloaded libraries, through the real agent over a unix socket. */

import { spawnSync } from 'node:child_process';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { ImageOutput } from '../../src/backend.js';
import { PYTHON, run, startAgent, type AgentHarness } from './agent-harness.js';

const HAS_MATPLOTLIB = spawnSync(PYTHON, ['-c', 'import matplotlib'], { stdio: 'ignore' }).status === 0;
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47]);

function isPng(image: unknown): boolean {
  const img = image as ImageOutput;
  return img?.type === 'image' && img.format === 'png' && Buffer.from(img.base64_data, 'base64').subarray(0, 4).equals(PNG_MAGIC);
}

describe('agent javascript and shell (unix socket)', () => {
  let agent: AgentHarness;

  beforeAll(async () => {
    agent = await startAgent({ transport: 'unix', interruptGraceMs: 1000 });
  });
  afterAll(async () => {
    await agent?.close();
  });

  it('keeps JavaScript state in one vm context: var x = 41, then x + 1', async () => {
    const first = await agent.client.execute(run('var x = 41; console.log("set")', { language: 'javascript' }));
    expect(first).toMatchObject({ status: 'Succeeded', stdout: 'set\n', result: '' });
    const second = await agent.client.execute(run('x + 1', { language: 'javascript' }));
    expect(second.result).toBe(42);
    const lexical = await agent.client.execute(run('let y = "lexical"', { language: 'javascript' }));
    expect(lexical.status).toBe('Succeeded');
    expect((await agent.client.execute(run('y', { language: 'javascript' }))).result).toBe('lexical');
  });

  it('maps JavaScript values and awaits promises', async () => {
    const js = (code: string) => agent.client.execute(run(code, { language: 'javascript' }));
    expect((await js('({a: 1, b: [1, 2]})')).result).toBe('{ a: 1, b: [ 1, 2 ] }');
    expect((await js('NaN')).result).toBeNull();
    expect((await js('undefined')).result).toBe('');
    expect((await js('Promise.resolve(7)')).result).toBe(7);
    expect((await js('await new Promise((r) => setTimeout(() => r("late"), 20))')).result).toBe('late');
    await js('var awaited = await Promise.resolve(5)');
    expect((await js('awaited * 2')).result).toBe(10);
    expect((await js('require("node:path").join("a", "b")')).result).toBe('a/b');
    expect((await js('process.cwd()')).result).toBe(agent.client.readyInfo?.dataDir);
  });

  it('reports JavaScript exceptions on stderr', async () => {
    const outcome = await agent.client.execute(
      run('function f() { throw new TypeError("bad") }\nf()', { language: 'javascript' }),
    );
    expect(outcome.status).toBe('Failed');
    expect(outcome.stderr).toContain('TypeError: bad');
    expect(outcome.sessionState).toBe('kept');
  });

  it('interrupts a JavaScript busy loop and keeps the context', async () => {
    await agent.client.execute(run('var survivor = "still here"', { language: 'javascript' }));
    const outcome = await agent.client.execute(run('while (true) {}', { language: 'javascript', timeoutMs: 300 }));
    expect(outcome).toMatchObject({ status: 'Failed', timedOut: true, sessionState: 'kept' });
    expect((await agent.client.execute(run('survivor', { language: 'javascript' }))).result).toBe('still here');
  });

  it('interrupts a promise that never settles and keeps the context', async () => {
    const outcome = await agent.client.execute(run('await new Promise(() => {})', { language: 'javascript', timeoutMs: 300 }));
    expect(outcome).toMatchObject({ status: 'Failed', timedOut: true, sessionState: 'kept' });
    expect((await agent.client.execute(run('survivor', { language: 'javascript' }))).result).toBe('still here');
  });

  it('restarts the JavaScript kernel when a timer callback spins forever', async () => {
    await agent.client.execute(run('var gone = 1', { language: 'javascript' }));
    const code = 'await new Promise(() => setTimeout(() => { while (true) {} }, 0))';
    const outcome = await agent.client.execute(run(code, { language: 'javascript', timeoutMs: 300 }));
    expect(outcome).toMatchObject({ status: 'Failed', timedOut: true, sessionState: 'restarted' });
    expect(outcome.stderr).toMatch(/^Kernel restarted/);
    const after = await agent.client.execute(run('typeof gone', { language: 'javascript' }));
    expect(after.result).toBe('undefined');
  });

  it('runs shell commands with exit codes, stdin, argv and the data dir as cwd', async () => {
    const ok = await agent.client.execute(run('echo hi; echo oops >&2', { language: 'shell' }));
    expect(ok).toMatchObject({ status: 'Succeeded', exitCode: 0, stdout: 'hi\n', stderr: 'oops\n' });
    const failed = await agent.client.execute(run('exit 3', { language: 'shell' }));
    expect(failed).toMatchObject({ status: 'Failed', exitCode: 3 });
    const stdin = await agent.client.execute(run('tr a-z A-Z', { language: 'shell', stdin: 'shout\n' }));
    expect(stdin.stdout).toBe('SHOUT\n');
    const argv = await agent.client.execute(run('', { language: 'shell', argv: ['printf', '%s|', 'a b', '$HOME'] }));
    expect(argv.stdout).toBe('a b|$HOME|');
    const pwd = await agent.client.execute(run('pwd', { language: 'shell' }));
    expect(pwd.stdout.trim()).toBe(agent.client.readyInfo?.dataDir);
    const missing = await agent.client.execute(run('', { language: 'shell', argv: ['/no/such/program'] }));
    expect(missing.exitCode).toBe(127);
  });

  it('kills a timed-out shell command with its children', async () => {
    const outcome = await agent.client.execute(run('sleep 30 & sleep 30; echo never', { language: 'shell', timeoutMs: 300 }));
    expect(outcome).toMatchObject({ status: 'Failed', timedOut: true, sessionState: 'kept' });
    expect(outcome.stdout).toBe('');
    expect(outcome.executionTimeInMilliseconds).toBeLessThan(5000);
  });

  it('serves a new client after the previous one disconnected', async () => {
    await agent.client.execute(run('reconnect_marker = "same kernel"'));
    agent.client.close();
    const next = await agent.reconnect();
    expect((await next.execute(run('reconnect_marker'))).result).toBe('same kernel');
  });
});

describe.skipIf(!HAS_MATPLOTLIB)('agent matplotlib figures (host Python has matplotlib)', () => {
  let agent: AgentHarness;

  beforeAll(async () => {
    agent = await startAgent({ transport: 'stdio', preload: ['numpy', 'pandas', 'matplotlib', 'matplotlib.pyplot'] });
  });
  afterAll(async () => {
    await agent?.close();
  });

  it('has preloaded the libraries before ready, so importing them is instant', async () => {
    expect(agent.client.readyInfo?.preloaded).toEqual(expect.arrayContaining(['numpy', 'matplotlib.pyplot']));
    const outcome = await agent.client.execute(
      run('import time\nt = time.perf_counter()\nimport numpy, matplotlib.pyplot\ntime.perf_counter() - t'),
    );
    expect(outcome.result as number).toBeLessThan(0.01);
  });

  it('returns a figure left open as the png result', async () => {
    const outcome = await agent.client.execute(run('import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])'));
    expect(outcome.status).toBe('Succeeded');
    expect(isPng(outcome.result)).toBe(true);
    expect(outcome.images ?? []).toHaveLength(0);
  });

  it('returns a Figure value as the result and earlier shows as extra images', async () => {
    const code = [
      'import matplotlib.pyplot as plt',
      'plt.plot([1, 2]); plt.show()',
      'fig = plt.figure(); fig.gca().bar([1], [2])',
      'fig',
    ].join('\n');
    const outcome = await agent.client.execute(run(code));
    expect(isPng(outcome.result)).toBe(true);
    expect(outcome.images).toHaveLength(1);
    expect(isPng(outcome.images?.[0])).toBe(true);
  });

  it('turns display(fig) into an image, shown once', async () => {
    const code = 'import matplotlib.pyplot as plt\nfig = plt.figure()\nplt.plot([1, 2])\ndisplay(fig)\n"value"';
    const outcome = await agent.client.execute(run(code));
    expect(outcome.result).toBe('value');
    expect(outcome.images).toHaveLength(1);
    expect(isPng(outcome.images?.[0])).toBe(true);
  });

  it('keeps a real value as the result and puts figures in images', async () => {
    const outcome = await agent.client.execute(run('import matplotlib.pyplot as plt\nplt.plot([3, 1])\n6 * 7'));
    expect(outcome.result).toBe(42);
    expect(outcome.images).toHaveLength(1);
  });

  it('survives a figure that cannot be rendered', async () => {
    const code = 'import matplotlib.pyplot as plt\nfig = plt.figure()\nfig.savefig = None\n"still here"';
    const outcome = await agent.client.execute(run(code));
    expect(outcome).toMatchObject({ status: 'Succeeded', result: 'still here', sessionState: 'kept' });
    expect(outcome.stderr).toContain('could not be rendered');
    expect((await agent.client.execute(run('1 + 1'))).result).toBe(2);
  });

  it('returns a DataFrame as its text repr when pandas is installed', async () => {
    const probe = await agent.client.execute(run('import importlib.util\nimportlib.util.find_spec("pandas") is not None'));
    if (probe.result !== true) return;
    const outcome = await agent.client.execute(run('import pandas as pd\npd.DataFrame({"a": [1, 2], "b": ["x", "y"]})'));
    expect(outcome.result).toBe('   a  b\n0  1  x\n1  2  y');
  });
});
