/** The agent as PID 1 (a VM's init, a container without --init): it forks itself and reaps the
 * orphans session code leaves behind. Needs root for a PID namespace (`unshare`). */

import { spawnSync } from 'node:child_process';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { run, startAgent, type AgentHarness } from './agent-harness.js';

const CAN_UNSHARE =
  process.getuid?.() === 0 &&
  spawnSync('unshare', ['-pf', '--kill-child', '--mount-proc', 'true'], { stdio: 'ignore' }).status === 0;

const COUNT_ZOMBIES = [
  'import os',
  'states = []',
  'for pid in filter(str.isdigit, os.listdir("/proc")):',
  '    try:',
  '        states.append(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0])',
  '    except OSError:',
  '        pass',
  'states.count("Z")',
].join('\n');

describe.skipIf(!CAN_UNSHARE)('agent as PID 1', () => {
  let agent: AgentHarness;

  beforeAll(async () => {
    agent = await startAgent({ transport: 'stdio', wrapper: ['unshare', '-pf', '--kill-child', '--mount-proc'] });
  });
  afterAll(async () => {
    await agent?.close();
  });

  it('reaps orphaned processes of session code', async () => {
    const parent = await agent.client.execute(run('import os\nos.getppid()'));
    expect(parent.result).not.toBe(1); // the agent proper is a child of the reaping init
    // Orphans: background jobs of a shell that has exited, and a double fork from Python.
    await agent.client.execute(run('for i in 1 2 3 4 5; do (sleep 0.1 &); done', { language: 'shell' }));
    await agent.client.execute(
      run(
        'import os, time\nif os.fork() == 0:\n    if os.fork() != 0:\n        os._exit(0)\n    time.sleep(0.1)\n    os._exit(0)\nos.wait()',
      ),
    );
    await new Promise((r) => setTimeout(r, 1000));
    expect((await agent.client.execute(run(COUNT_ZOMBIES))).result).toBe(0);
  });
});
