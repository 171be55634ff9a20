/**
 * The agent's `--device` transport (virtio-serial in VMs) against a real character device: a
 * pseudo-terminal in raw mode. A small Python bridge owns the pty master and relays it to its
 * stdio, which the client uses as its stream.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { AgentClient, agentCommand } from '../../backends/support/agent-client/index.js';
import { childPids, PYTHON, run } from './agent-harness.js';

const BRIDGE = `
import os, sys, threading, tty
master, slave = os.openpty()
tty.setraw(slave)
sys.stderr.write(os.ttyname(slave) + "\\n"); sys.stderr.flush()
def pump(src, dst):
    while True:
        try:
            data = os.read(src, 65536)
        except OSError:
            data = b""
        if not data:
            os._exit(0)
        view = memoryview(data)
        while view:
            view = view[os.write(dst, view):]
threading.Thread(target=pump, args=(0, master), daemon=True).start()
pump(master, 1)
`;

describe('agent over a character device (pty standing in for virtio-serial)', () => {
  let bridge: ChildProcess;
  let agent: ChildProcess;
  let client: AgentClient;
  let root: string;

  beforeAll(async () => {
    root = mkdtempSync(path.join(tmpdir(), 'sandpool-agent-device-'));
    bridge = spawn(PYTHON, ['-c', BRIDGE], { stdio: ['pipe', 'pipe', 'pipe'] });
    const device = await new Promise<string>((resolve, reject) => {
      let text = '';
      bridge.stderr?.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (text.includes('\n')) resolve(text.split('\n')[0] as string);
      });
      bridge.once('exit', () => reject(new Error(`bridge exited: ${text}`)));
    });
    const argv = agentCommand({
      python: PYTHON,
      transport: { kind: 'device', path: device },
      dataDir: path.join(root, 'data'),
      preload: [],
    });
    agent = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    client = new AgentClient(Duplex.from({ readable: bridge.stdout, writable: bridge.stdin }));
    // The agent only starts a connection when the host speaks first (as on virtio-serial).
    await client.ready(AbortSignal.timeout(60_000));
  });

  afterAll(() => {
    client?.close();
    const kernels = agent?.pid === undefined ? [] : childPids(agent.pid);
    agent?.kill('SIGKILL');
    bridge?.kill('SIGKILL');
    for (const pid of kernels) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(root, { recursive: true, force: true });
  });

  it('executes code and moves files through the device', async () => {
    expect((await client.execute(run('6 * 7'))).result).toBe(42);
    async function* data(): AsyncGenerator<Uint8Array> {
      yield Buffer.alloc(300_000, 7);
    }
    const info = await client.upload('via-device.bin', data(), { maxBytes: 1 << 20 });
    expect(info.sizeInBytes).toBe(300_000);
    const { body } = await client.download('via-device.bin');
    let total = 0;
    for await (const chunk of body) total += chunk.byteLength;
    expect(total).toBe(300_000);
    expect(await client.ping(2000)).toBeLessThan(2000);
  });
});
