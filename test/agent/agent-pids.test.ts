/**
 * The agent shares its process limit with the session's code (a container's pids cgroup, the VM
 * guest's RLIMIT_NPROC), so code that forks until the limit leaves the agent unable to start a
 * thread or a process. Everything the agent must still do then — answer, stream output, report
 * results, interrupt, serve files, checkpoint, refuse what needs a new process with a clear error —
 * runs on threads it started before the session's code did. Here the agent runs as a uid of its own
 * under RLIMIT_NPROC, which counts threads and processes alike, like the pids cgroup.
 */

import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { checkpointToFile } from '../../backends/support/agent-client/index.js';
import type { OutputChunk } from '../../src/backend.js';
import { PYTHON, processesOf, run, startAgent, type AgentHarness } from './agent-harness.js';

const root = process.getuid?.() === 0;
const tools = spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;
const hasDill = spawnSync(PYTHON, ['-c', 'import dill'], { stdio: 'ignore' }).status === 0;
const NPROC = 40;

/**
 * Python that starts a hog: a child in a session of its own (so killing the kernel's process group
 * spares it) that forks sleeping children until the limit, then takes every pid that frees up. The
 * cell returns once its own fork is refused: from then on nothing new starts until the hog dies.
 */
const startHog = [
  'import os, time, json',
  'hog = os.fork()',
  'if hog == 0:',
  '    try:',
  '        os.setsid()',
  '        while True:',
  '            try:',
  '                child = os.fork()',
  '            except OSError:',
  '                time.sleep(0.001)',
  '                continue',
  '            if child == 0:',
  '                time.sleep(600)',
  '                os._exit(0)',
  '    finally:',
  '        os._exit(0)',
  'while True:',
  '    try:',
  '        probe = os.fork()',
  '    except OSError as e:',
  '        refused = e.errno',
  '        break',
  '    if probe == 0:',
  '        os._exit(0)',
  '    os.waitpid(probe, 0)',
  '    time.sleep(0.01)',
  'print(json.dumps({"refused": refused}))',
].join('\n');

/** Kill the hog's process group (it and its children) from the kernel. */
const killHog = 'import signal\nos.killpg(hog, signal.SIGKILL)\nos.waitpid(hog, 0)\n"killed"';

describe.skipIf(!root || !tools)('agent with its process limit spent by session code', () => {
  let agent: AgentHarness;
  let uid: number;
  let dir: string;

  beforeAll(async () => {
    uid = 3_000_000 + randomInt(1_000_000);
    agent = await startAgent({ transport: 'unix', processLimit: { uid, nproc: NPROC }, interruptGraceMs: 1000 });
    dir = mkdtempSync(path.join(tmpdir(), 'sandpool-pids-test-'));
    chownSync(dir, uid, uid); // the agent connects to the checkpoint socket in it
  }, 120_000);

  afterAll(async () => {
    await agent?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (uid !== undefined) expect(processesOf(uid)).toEqual([]); // close killed and awaited them
  });

  it('reports the fork bomb, streams its output, and keeps answering while every pid is taken', async () => {
    const seen: OutputChunk[] = [];
    const bomb = await agent.client.execute(run(startHog, { timeoutMs: 60_000 }), {
      onOutput: (chunk) => seen.push(chunk),
    });
    expect(bomb.status, bomb.stderr).toBe('Succeeded');
    expect(JSON.parse(bomb.stdout)).toEqual({ refused: 11 }); // EAGAIN
    expect(seen).toEqual([{ type: 'stdout', text: bomb.stdout }]);

    expect(await agent.client.ping()).toBeGreaterThan(0);
    expect((await agent.client.info()).runtimes[0]?.name).toBe('python');

    // Output streams (the relay thread was started before), a timeout interrupts and keeps the state.
    const streamed: OutputChunk[] = [];
    const printed = await agent.client.execute(run('for i in range(3):\n    print(i, flush=True)\nhog > 0'), {
      onOutput: (chunk) => streamed.push(chunk),
    });
    expect(printed).toMatchObject({ status: 'Succeeded', stdout: '0\n1\n2\n', result: true });
    expect(streamed.map((c) => (c.type === 'stdout' ? c.text : '')).join('')).toBe('0\n1\n2\n');
    const slow = await agent.client.execute(run('time.sleep(30)', { timeoutMs: 1000 }));
    expect(slow).toMatchObject({ status: 'Failed', timedOut: true, sessionState: 'kept' });

    // Two executions at once (one waits for the kernel) and a shell that cannot start.
    const [first, second] = await Promise.all([agent.client.execute(run('time.sleep(0.5)\n1')), agent.client.execute(run('2'))]);
    expect([first.result, second.result]).toEqual([1, 2]);
    const shell = await agent.client.execute(run('echo never', { language: 'shell' }));
    expect(shell).toMatchObject({ status: 'Failed', exitCode: 126, stdout: '' });
    expect(shell.stderr).toMatch(/Resource temporarily unavailable/);
    const js = await agent.client.execute(run('1', { language: 'javascript' }));
    expect(js.status).toBe('Failed');
    expect(js.stderr).toMatch(/cannot start the JavaScript kernel.*Resource temporarily unavailable/);

    // Files: upload, list, download.
    const content = new TextEncoder().encode('x'.repeat(300_000));
    await agent.client.upload(
      'f.bin',
      (async function* () {
        yield content;
      })(),
      { maxBytes: 1 << 20 },
    );
    expect((await agent.client.list({ path: '', recursive: false })).map((f) => f.name)).toContain('f.bin');
    const { body } = await agent.client.download('f.bin');
    let size = 0;
    for await (const chunk of body) size += chunk.length;
    expect(size).toBe(content.length);

    // A pause: the hog's processes are named as not kept.
    if (hasDill) {
      const socketPath = path.join(dir, 'state.sock');
      const { report } = await checkpointToFile(
        agent.client,
        { hostPath: socketPath, agentPath: socketPath, grant: (p) => chownSync(p, uid, uid) },
        path.join(dir, 'state.bin'),
        { maxBytes: 1 << 30, timeoutMs: 60_000 },
      );
      expect(report.lost.filter((l) => l.type === 'process').length).toBeGreaterThan(NPROC / 2);
    }

    // The code gives the pids back: processes start again (once init has reaped the hog's children).
    expect((await agent.client.execute(run(killHog))).result).toBe('killed');
    await expect
      .poll(async () => (await agent.client.execute(run('echo back', { language: 'shell' }))).stdout, { timeout: 10_000 })
      .toBe('back\n');
  }, 180_000);

  it('kills a shell command that spent the limit at its time limit, with its process group, output streamed', async () => {
    const seen: OutputChunk[] = [];
    const forker = [
      'import os, time',
      'n = 0',
      'while True:',
      '    try:',
      '        pid = os.fork()',
      '    except OSError as e:',
      '        print("refused", e.errno, flush=True)',
      '        break',
      '    if pid == 0:',
      '        time.sleep(600)',
      '        os._exit(0)',
      '    n += 1',
      'time.sleep(600)',
    ].join('\n');
    const bomb = await agent.client.execute(run(`echo start; python3 -c '${forker}'`, { language: 'shell', timeoutMs: 3000 }), {
      onOutput: (chunk) => seen.push(chunk),
    });
    expect(bomb).toMatchObject({ status: 'Failed', timedOut: true, stdout: 'start\nrefused 11\n' });
    expect(seen.map((c) => (c.type === 'stdout' ? c.text : '')).join('')).toBe(bomb.stdout);
    // Its whole process group went with it: a new process starts.
    await expect
      .poll(async () => (await agent.client.execute(run('echo ok', { language: 'shell' }))).stdout, { timeout: 10_000 })
      .toBe('ok\n');
  }, 60_000);

  it('says why when a killed kernel cannot be restarted, and recovers once pids are free', async () => {
    const bomb = await agent.client.execute(run(startHog, { timeoutMs: 60_000 }));
    expect(bomb.status, bomb.stderr).toBe('Succeeded');
    // A cell that ignores the interrupt: the kernel is killed, and the hog takes its pids.
    const stuck = await agent.client.execute(
      run('import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass', { timeoutMs: 1000 }),
    );
    expect(stuck).toMatchObject({ status: 'Failed', sessionState: 'restarted' });
    const next = await agent.client.execute(run('1'));
    expect(next.status).toBe('Failed');
    expect(next.stderr).toMatch(/cannot start the Python kernel.*Resource temporarily unavailable/);
    expect(await agent.client.ping()).toBeGreaterThan(0);
    // The hog dies (here from outside: no kernel is left to kill it): the next execution gets a fresh kernel.
    for (const pid of processesOf(uid)) {
      try {
        if (pid !== agent.child.pid) process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await expect.poll(async () => (await agent.client.execute(run('21 * 2'))).result, { timeout: 20_000 }).toBe(42);
  }, 120_000);
});
