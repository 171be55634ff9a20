/** The agent's Python kernel through the real client over stdio: state, IPython result semantics,
 * tracebacks, timeouts (kept and restarted), crashes and output caps. */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { run, startAgent, type AgentHarness } from './agent-harness.js';

describe('agent python kernel (stdio)', () => {
  let agent: AgentHarness;

  beforeAll(async () => {
    agent = await startAgent({ transport: 'stdio', interruptGraceMs: 1000 });
  });
  afterAll(async () => {
    await agent?.close();
  });

  it('announces readiness with versions and its pid', () => {
    const ready = agent.client.readyInfo;
    expect(ready?.protocol).toBe(1);
    expect(ready?.python).toMatch(/^3\.\d+\.\d+$/);
    expect(ready?.pid).toBe(agent.child.pid);
  });

  it('keeps state between executions and returns the last expression', async () => {
    const first = await agent.client.execute(run('x = 41\nprint("set")'));
    expect(first).toMatchObject({ status: 'Succeeded', stdout: 'set\n', stderr: '', result: '', sessionState: 'kept' });
    const second = await agent.client.execute(run('x + 1'));
    expect(second.result).toBe(42);
    expect(second.status).toBe('Succeeded');
  });

  it('maps values like IPython and Azure do', async () => {
    const cases: Array<[string, unknown]> = [
      ['6*7', 42],
      ['1.5', 1.5],
      ['True', true],
      ['"nan"', 'nan'],
      ["float('nan')", null],
      ['None', ''],
      ['y = 3', ''],
      ['print(7*9)', ''],
      ['[1, 2, 3]', '[1, 2, 3]'],
      ["{'b': 1, 'a': 2}", "{'b': 1, 'a': 2}"],
      ['2**64', '18446744073709551616'],
    ];
    for (const [code, expected] of cases) {
      const outcome = await agent.client.execute(run(code));
      expect({ code, result: outcome.result }).toEqual({ code, result: expected });
    }
  });

  it('uses the multi-line pprint repr for long containers (AutoGen splits on ",\\n")', async () => {
    const outcome = await agent.client.execute(run('[f"package-{i}" for i in range(30)]'));
    expect(typeof outcome.result).toBe('string');
    expect(String(outcome.result).split(',\n')).toHaveLength(30);
  });

  it('accepts notebook lines: !shell, %pip, %matplotlib, and refuses other magics clearly', async () => {
    const outcome = await agent.client.execute(run('!echo from the shell\n%matplotlib inline\nn = 3\nn * 2'));
    expect(outcome).toMatchObject({ status: 'Succeeded', stdout: 'from the shell\n', result: 6 });
    const magic = await agent.client.execute(run('%timeit 1 + 1'));
    expect(magic.status).toBe('Failed');
    expect(magic.stderr).toContain("UsageError: IPython magic '%timeit 1 + 1' is not supported");
    // Valid Python that merely looks like a magic is left alone.
    expect((await agent.client.execute(run('(7\n%3)'))).result).toBe(1);
  });

  it('has display() print the text repr of values', async () => {
    const outcome = await agent.client.execute(run('display({"a": 1}, "plain")\n"done"'));
    expect(outcome).toMatchObject({ stdout: "{'a': 1}\nplain\n", result: 'done' });
  });

  it('supports top-level await', async () => {
    const outcome = await agent.client.execute(run('import asyncio\nawait asyncio.sleep(0.01)\n"awaited"'));
    expect(outcome.result).toBe('awaited');
  });

  it('reports exceptions as a traceback on stderr with status Failed, keeping the session', async () => {
    const outcome = await agent.client.execute(run('z = 1\ndef f():\n    raise ValueError("boom")\nf()'));
    expect(outcome.status).toBe('Failed');
    expect(outcome.sessionState).toBe('kept');
    expect(outcome.stderr).toContain('Traceback (most recent call last)');
    expect(outcome.stderr).toContain('ValueError: boom');
    expect(outcome.stderr).toContain('<cell-');
    expect(outcome.stderr).not.toContain('python_kernel.py');
    expect((await agent.client.execute(run('z'))).result).toBe(1);
  });

  it('reports syntax errors without the kernel frames', async () => {
    const outcome = await agent.client.execute(run('def f(:'));
    expect(outcome.status).toBe('Failed');
    expect(outcome.stderr).toContain('SyntaxError');
    expect(outcome.stderr).not.toContain('ast.py');
  });

  it('interrupts a timed-out execution and keeps the state', async () => {
    await agent.client.execute(run('kept = "yes"'));
    const outcome = await agent.client.execute(run('import time\nprint("before")\ntime.sleep(30)', { timeoutMs: 300 }));
    expect(outcome).toMatchObject({ status: 'Failed', timedOut: true, sessionState: 'kept', stdout: 'before\n' });
    expect(outcome.stderr).toContain('KeyboardInterrupt');
    expect(outcome.stderr).toContain('timed out');
    expect(outcome.executionTimeInMilliseconds).toBeLessThan(5000);
    expect((await agent.client.execute(run('kept'))).result).toBe('yes');
  });

  it('still reports a timeout when the cell catches the KeyboardInterrupt', async () => {
    const code = 'import time\ntry:\n    time.sleep(30)\nexcept KeyboardInterrupt:\n    print("caught")\n"finished"';
    const outcome = await agent.client.execute(run(code, { timeoutMs: 300 }));
    expect(outcome).toMatchObject({ status: 'Failed', timedOut: true, sessionState: 'kept', stdout: 'caught\n' });
  });

  it('restarts a kernel that ignores the interrupt, and says the state was lost', async () => {
    await agent.client.execute(run('lost = 1'));
    const code = 'import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass';
    const outcome = await agent.client.execute(run(code, { timeoutMs: 300 }));
    expect(outcome).toMatchObject({ status: 'Failed', timedOut: true, sessionState: 'restarted' });
    expect(outcome.stderr).toMatch(/^Kernel restarted/);
    expect(outcome.stderr).toContain('state');
    const after = await agent.client.execute(run('lost'));
    expect(after.status).toBe('Failed');
    expect(after.stderr).toContain("NameError: name 'lost' is not defined");
    expect((await agent.client.execute(run('1 + 1'))).result).toBe(2);
  });

  it('reports a kernel crash as Failed with "Kernel restarted" and recovers', async () => {
    const exit = await agent.client.execute(run('import os\nprint("bye", flush=True)\nos._exit(3)'));
    expect(exit).toMatchObject({ status: 'Failed', sessionState: 'restarted', stdout: 'bye\n' });
    expect(exit.stderr).toMatch(/^Kernel restarted: .*exited with code 3/);
    const segv = await agent.client.execute(run('import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)'));
    expect(segv.sessionState).toBe('restarted');
    expect(segv.stderr).toMatch(/^Kernel restarted: .*SIGSEGV/);
    expect((await agent.client.execute(run('"alive"'))).result).toBe('alive');
  });

  it('reports a kernel that died between executions on the next one', async () => {
    await agent.client.execute(run('idle_state = 1'));
    await agent.client.execute(
      run('import os, threading, time\nthreading.Thread(target=lambda: (time.sleep(0.3), os._exit(9))).start()'),
    );
    await new Promise((r) => setTimeout(r, 1000));
    const next = await agent.client.execute(run('"fresh kernel"'));
    expect(next).toMatchObject({ status: 'Succeeded', result: 'fresh kernel', sessionState: 'restarted' });
    expect(next.stderr).toMatch(/^Kernel restarted: .*exited with code 9 while idle/);
  });

  it('caps each output stream at the source and marks the cut', async () => {
    const code = 'import sys\nprint("é" * 100000)\nsys.stderr.write("e" * 50000)\n"done"';
    const outcome = await agent.client.execute(run(code, { outputMaxBytes: 1001 }));
    expect(outcome.result).toBe('done');
    expect(outcome.stdoutTruncated).toBe(true);
    expect(outcome.stderrTruncated).toBe(true);
    // 1001 bytes cut on a character boundary: 500 two-byte characters, then the marker.
    expect(outcome.stdout.startsWith(`${'é'.repeat(500)}\n[sandpool: stdout truncated`)).toBe(true);
    expect(outcome.stdout).toContain('more bytes not shown');
    expect(Buffer.byteLength(outcome.stderr)).toBeLessThan(1200);
  });

  it('captures output of child processes and C-level writes', async () => {
    const outcome = await agent.client.execute(
      run('import os, subprocess\nos.write(1, b"raw\\n")\nsubprocess.run(["echo", "child"])'),
    );
    expect(outcome.stdout).toBe('raw\nchild\n');
  });

  it('offers the kernel, not the agent, to the OOM killer first', async () => {
    const outcome = await agent.client.execute(run('open("/proc/self/oom_score_adj").read().strip()'));
    expect(outcome.result).toBe('1000');
    const agentScore = await agent.client.execute(run(`open("/proc/${agent.child.pid}/oom_score_adj").read().strip()`));
    expect(Number(agentScore.result)).toBeLessThan(1000);
  });

  it('still completes cells after the session redirects its stdout to /dev/null', async () => {
    const outcome = await agent.client.execute(run('import os\nos.dup2(os.open(os.devnull, os.O_WRONLY), 1)\nprint("gone")\n5'));
    expect(outcome).toMatchObject({ status: 'Succeeded', result: 5, stdout: '' });
    const next = await agent.client.execute(run('1/0'));
    expect(next.stderr).toContain('ZeroDivisionError');
    // Without the private marker fds every cell would wait a full second for its end marker.
    let total = 0;
    for (let i = 0; i < 5; i++) total += (await agent.client.execute(run('i = 1'))).executionTimeInMilliseconds;
    expect(total).toBeLessThan(4000);
  });

  it('runs in the data directory', async () => {
    const outcome = await agent.client.execute(run('import os\nos.getcwd()'));
    expect(outcome.result).toBe(agent.client.readyInfo?.dataDir);
  });

  it('answers pings while code runs', async () => {
    const running = agent.client.execute(run('import time\ntime.sleep(1.5)\n"slept"'));
    await new Promise((r) => setTimeout(r, 200));
    const rtts: number[] = [];
    for (let i = 0; i < 5; i++) rtts.push(await agent.client.ping(1000));
    expect(Math.max(...rtts)).toBeLessThan(500);
    expect((await running).result).toBe('slept');
  });

  it('interrupts on abort and the next execution still runs', async () => {
    const controller = new AbortController();
    const pending = agent.client.execute(run('import time\ntime.sleep(30)'), { signal: controller.signal });
    setTimeout(() => controller.abort(), 200);
    await expect(pending).rejects.toMatchObject({ code: 'SANDPOOL_ABORTED' });
    const next = await agent.client.execute(run('"next"'));
    expect(next.result).toBe('next');
  });

  it('restarts the kernel on request, dropping its state', async () => {
    await agent.client.execute(run('before_restart = 1'));
    await agent.client.restartKernel('python');
    const after = await agent.client.execute(run('before_restart'));
    expect(after.stderr).toContain('NameError');
    expect((await agent.client.execute(run('"fresh"'))).result).toBe('fresh');
  });

  it('rejects malformed requests with typed errors', async () => {
    const bad = { language: 'python' as const, code: 'x', timeoutMs: 0, outputMaxBytes: 10 };
    await expect(agent.client.execute(bad)).rejects.toMatchObject({ code: 'SANDPOOL_INVALID_REQUEST' });
    await expect(agent.client.execute({ ...bad, timeoutMs: 10, language: 'cobol' as never })).rejects.toMatchObject({
      code: 'SANDPOOL_INVALID_REQUEST',
    });
  });
});
