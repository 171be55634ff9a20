/**
 * The agent streams output and displayed images while code runs, and binds environment variables
 * to the session (env.set) or to one execution (execute's env), through the real client.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { OutputChunk } from '../../src/backend.js';
import { ErrorCode } from '../../src/errors.js';
import { run, startAgent, type AgentHarness } from './agent-harness.js';

interface Seen {
  readonly chunk: OutputChunk;
  readonly at: number;
}

function recorder(): { seen: Seen[]; onOutput: (chunk: OutputChunk) => void; text: (type: 'stdout' | 'stderr') => string } {
  const seen: Seen[] = [];
  return {
    seen,
    onOutput: (chunk) => seen.push({ chunk, at: performance.now() }),
    text: (type) =>
      seen
        .map((s) => s.chunk)
        .filter((c): c is Extract<OutputChunk, { type: 'stdout' | 'stderr' }> => c.type === type)
        .map((c) => c.text)
        .join(''),
  };
}

describe('agent streaming and environment (stdio)', () => {
  let agent: AgentHarness;

  beforeAll(async () => {
    agent = await startAgent({ transport: 'stdio', interruptGraceMs: 1000 });
  });
  afterAll(async () => {
    await agent?.close();
  });

  it('streams Python output as it is printed, long before the execution ends', async () => {
    const out = recorder();
    const code = 'import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.5)';
    const outcome = await agent.client.execute(run(code), { onOutput: out.onOutput });
    const ended = performance.now();
    expect(outcome.stdout).toBe('0\n1\n2\n');
    expect(out.text('stdout')).toBe(outcome.stdout);
    const first = out.seen[0];
    expect(first?.chunk).toEqual({ type: 'stdout', text: '0\n' });
    // The code runs 1.5 s; the first line must arrive about 1.5 s before the end, not with it.
    expect(ended - first!.at).toBeGreaterThan(900);
    expect(out.seen.length).toBeGreaterThanOrEqual(3);
  });

  it('streams shell and JavaScript output as it comes', async () => {
    const shell = recorder();
    const sh = await agent.client.execute(run('for i in 1 2; do echo $i; sleep 0.5; done; echo err >&2', { language: 'shell' }), {
      onOutput: shell.onOutput,
    });
    const shellEnd = performance.now();
    expect(sh.stdout).toBe('1\n2\n');
    expect(shell.text('stdout')).toBe(sh.stdout);
    expect(shell.text('stderr')).toBe(sh.stderr);
    expect(shellEnd - shell.seen[0]!.at).toBeGreaterThan(600);

    const js = recorder();
    const code = 'console.log("a"); await new Promise((r) => setTimeout(r, 700)); console.error("b"); 7';
    const outcome = await agent.client.execute(run(code, { language: 'javascript' }), { onOutput: js.onOutput });
    const jsEnd = performance.now();
    expect(outcome).toMatchObject({ stdout: 'a\n', stderr: 'b\n', result: 7 });
    expect(js.text('stdout')).toBe('a\n');
    expect(jsEnd - js.seen[0]!.at).toBeGreaterThan(400);
  });

  it('keeps the cap and its marker: the streamed pieces joined are the final streams', async () => {
    const out = recorder();
    const code = 'import sys\nfor _ in range(50):\n    print("é" * 100, flush=True)\nsys.stderr.write("e" * 5000)\n"done"';
    const outcome = await agent.client.execute(run(code, { outputMaxBytes: 1001 }), { onOutput: out.onOutput });
    expect(outcome.stdoutTruncated).toBe(true);
    expect(outcome.stdout).toMatch(/\[sandpool: stdout truncated: \d+ more bytes not shown\]\n$/);
    expect(out.text('stdout')).toBe(outcome.stdout);
    expect(out.text('stderr')).toBe(outcome.stderr);
    expect(Buffer.byteLength(outcome.stdout.split('\n[sandpool')[0]!)).toBeLessThanOrEqual(1001);
    expect(outcome.stdout).not.toContain('\uFFFD');
  });

  it('streams the timeout note like any other stderr', async () => {
    const out = recorder();
    const outcome = await agent.client.execute(
      run('import time\nprint("before", flush=True)\ntime.sleep(30)', { timeoutMs: 400 }),
      {
        onOutput: out.onOutput,
      },
    );
    expect(outcome.timedOut).toBe(true);
    expect(outcome.stderr).toContain('timed out');
    expect(out.text('stderr')).toBe(outcome.stderr);
    expect(out.text('stdout')).toBe('before\n');
  });

  it('streams a shown figure as a display chunk while the cell still runs', async () => {
    const out = recorder();
    const code =
      'import time\nimport matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()\ntime.sleep(1)\nplt.plot([3, 2, 1])\n"end"';
    const outcome = await agent.client.execute(run(code), { onOutput: out.onOutput });
    const ended = performance.now();
    const displays = out.seen.filter((s) => s.chunk.type === 'display');
    expect(displays).toHaveLength(2);
    expect(ended - displays[0]!.at).toBeGreaterThan(700);
    const first = displays[0]!.chunk as Extract<OutputChunk, { type: 'display' }>;
    expect(first.image.format).toBe('png');
    expect(Buffer.from(first.image.base64_data, 'base64').subarray(1, 4).toString()).toBe('PNG');
    // The outcome keeps Azure's shape: a value result, and both figures in images.
    expect(outcome.result).toBe('end');
    expect(outcome.images?.map((i) => i.base64_data)).toEqual(
      displays.map((d) => (d.chunk as Extract<OutputChunk, { type: 'display' }>).image.base64_data),
    );
  });

  it('survives an onOutput that throws', async () => {
    const outcome = await agent.client.execute(run('print("x")\n1'), {
      onOutput: () => {
        throw new Error('consumer broke');
      },
    });
    expect(outcome).toMatchObject({ stdout: 'x\n', result: 1 });
    expect((await agent.client.execute(run('2'))).result).toBe(2);
  });

  it('binds session variables for Python, child processes, JavaScript and shell', async () => {
    await agent.client.setEnvironment({ SANDPOOL_TEST_TOKEN: 'tok-123', SECOND: 'two words' });
    const py = await agent.client.execute(run('import os\nos.environ["SANDPOOL_TEST_TOKEN"] + "|" + os.environ["SECOND"]'));
    expect(py.result).toBe('tok-123|two words');
    const child = await agent.client.execute(
      run('import subprocess\nsubprocess.run(["sh", "-c", "echo $SANDPOOL_TEST_TOKEN"], capture_output=True, text=True).stdout'),
    );
    expect(child.result).toBe('tok-123\n');
    const js = await agent.client.execute(run('process.env.SANDPOOL_TEST_TOKEN', { language: 'javascript' }));
    expect(js.result).toBe('tok-123');
    const sh = await agent.client.execute(run('printf %s "$SANDPOOL_TEST_TOKEN"', { language: 'shell' }));
    expect(sh.stdout).toBe('tok-123');
  });

  it('keeps session variables across a kernel restart and lets a later env.set add or replace', async () => {
    await agent.client.restartKernel('python');
    expect((await agent.client.execute(run('import os\nos.environ.get("SANDPOOL_TEST_TOKEN")'))).result).toBe('tok-123');
    await agent.client.setEnvironment({ SANDPOOL_TEST_TOKEN: 'tok-456', THIRD: '3' });
    const py = await agent.client.execute(
      run('import os\nos.environ["SANDPOOL_TEST_TOKEN"] + os.environ["THIRD"] + os.environ["SECOND"]'),
    );
    expect(py.result).toBe('tok-4563two words');
  });

  it('sets per-execution variables for that execution only', async () => {
    const code = 'import os\nos.environ.get("ONCE", "unset") + "/" + os.environ.get("SECOND")';
    const once = await agent.client.execute(run(code, { env: { ONCE: 'here', SECOND: 'overridden' } }));
    expect(once.result).toBe('here/overridden');
    expect((await agent.client.execute(run(code))).result).toBe('unset/two words');
    const jsCode = '(process.env.ONCE ?? "unset") + "/" + process.env.SECOND';
    expect((await agent.client.execute(run(jsCode, { language: 'javascript', env: { ONCE: 'js' } }))).result).toBe(
      'js/two words',
    );
    expect((await agent.client.execute(run(jsCode, { language: 'javascript' }))).result).toBe('unset/two words');
    const shOnce = 'printf %s "$(printenv ONCE || echo unset)"';
    const sh = await agent.client.execute(run(shOnce, { language: 'shell', env: { ONCE: 'sh' } }));
    expect(sh.stdout).toBe('sh');
    expect((await agent.client.execute(run(shOnce, { language: 'shell' }))).stdout).toBe('unset');
  });

  it('refuses bad variables without quoting their values', async () => {
    const secret = 'very-secret-value';
    await expect(agent.client.setEnvironment({ 'BAD-NAME': secret })).rejects.toMatchObject({ code: ErrorCode.INVALID_REQUEST });
    const nul = agent.client.setEnvironment({ GOOD: `${secret}\0` });
    await expect(nul).rejects.toMatchObject({ code: ErrorCode.INVALID_REQUEST });
    await nul.catch((error: Error) => expect(error.message).not.toContain(secret));
    await expect(agent.client.execute(run('1', { env: { X: `${secret}\0` } }))).rejects.toMatchObject({
      code: ErrorCode.INVALID_REQUEST,
    });
    expect(agent.stderr()).not.toContain(secret);
  });
});
