/** Protocol robustness on both sides: the agent survives malformed host frames; the client fails
 * fast when the stream dies or the agent hangs, and closes on hostile agent output. */

import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { AgentClient } from '../../backends/support/agent-client/index.js';
import { BackendError } from '../../src/errors.js';
import { run, startAgent, type AgentHarness } from './agent-harness.js';

/** Sends raw lines on a fresh socket to the agent and collects the frames that come back. */
class RawPeer {
  readonly frames: Array<Record<string, unknown>> = [];
  #buffer = '';
  constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.#buffer += text;
      let nl: number;
      while ((nl = this.#buffer.indexOf('\n')) >= 0) {
        this.frames.push(JSON.parse(this.#buffer.slice(0, nl)) as Record<string, unknown>);
        this.#buffer = this.#buffer.slice(nl + 1);
      }
    });
  }
  async waitFor(predicate: (f: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const found = this.frames.find(predicate);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`frame not received; got ${JSON.stringify(this.frames).slice(0, 500)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

describe('agent protocol robustness', () => {
  let agent: AgentHarness | undefined;
  const cleanups: Array<() => void> = [];

  afterEach(async () => {
    for (const c of cleanups.splice(0)) c();
    await agent?.close();
    agent = undefined;
  });

  it('answers malformed frames with errors and keeps serving', async () => {
    agent = await startAgent({ transport: 'unix' });
    agent.client.close();
    const socket = connect(agent.socketPath as string);
    await once(socket, 'connect');
    const peer = new RawPeer(socket);
    await peer.waitFor((f) => f.type === 'ready');
    const lines = [
      'not json',
      '[1,2,3]',
      '{"op":"ping"}',
      '{"op":"ping","id":-1}',
      '{"op":"ping","id":"bad id with spaces"}',
      '{"op":"launch-missiles","id":10}',
      '{"op":"execute","id":11,"language":"python","code":42,"timeoutMs":100,"outputMaxBytes":10}',
      '{"op":"execute","id":12,"language":"python","code":"1","timeoutMs":0,"outputMaxBytes":10}',
      '{"op":"execute","id":13,"language":"shell","code":"","argv":"ls","timeoutMs":100,"outputMaxBytes":10}',
      '{"op":"files.upload.chunk","id":14,"data":"AAAA"}',
      '{"op":"files.upload","id":15,"path":"x.bin","maxBytes":10}',
      '{"op":"files.upload.chunk","id":15,"data":"!!not base64!!"}',
      '{"op":"files.download","id":16,"path":"x","window":1000}',
    ];
    socket.write(`${lines.join('\n')}\n`);
    socket.write(`${'x'.repeat(9 << 20)}\n`); // over the agent's 8 MiB frame limit
    socket.write('{"op":"ping","id":99}\n');
    await peer.waitFor((f) => f.type === 'pong' && f.id === 99);
    const errors = peer.frames.filter((f) => f.type === 'error');
    // "not json", "[1,2,3]", three bad or missing ids, and the oversized frame.
    expect(errors.filter((f) => f.id === null)).toHaveLength(6);
    for (const id of [10, 11, 12, 13, 14, 15, 16]) {
      expect(
        errors.find((f) => f.id === id),
        `error for ${id}`,
      ).toMatchObject({ code: 'BAD_REQUEST' });
    }
    socket.destroy();
  });

  it('rejects pending calls at once when the agent dies, and every later call too', async () => {
    agent = await startAgent({ transport: 'stdio' });
    const pending = agent.client.execute(run('import time\ntime.sleep(60)'));
    const ping = agent.client.ping(30_000);
    await new Promise((r) => setTimeout(r, 100));
    const killedAt = Date.now();
    agent.child.kill('SIGKILL');
    await expect(pending).rejects.toBeInstanceOf(BackendError);
    await expect(ping).resolves.toBeTypeOf('number'); // answered before the kill
    expect(Date.now() - killedAt).toBeLessThan(2000);
    expect(agent.client.closed).toBe(true);
    expect(agent.closeErrors).toHaveLength(1);
    await expect(agent.client.execute(run('1'))).rejects.toBeInstanceOf(BackendError);
    await expect(agent.client.stat('x')).rejects.toBeInstanceOf(BackendError);
  });

  it('gives up on an agent that hangs, reporting the session as lost', async () => {
    agent = await startAgent({ transport: 'stdio', client: { executeGraceMs: 300, requestTimeoutMs: 500 } });
    const child = agent.child;
    child.kill('SIGSTOP');
    cleanups.push(() => child.kill('SIGCONT'));
    const started = Date.now();
    const outcome = await agent.client.execute(run('1', { timeoutMs: 200 }));
    expect(outcome).toMatchObject({ status: 'Failed', sessionState: 'lost', timedOut: true });
    expect(outcome.stderr).toContain('did not answer');
    expect(Date.now() - started).toBeLessThan(5000);
    expect(agent.client.closed).toBe(true);
  });

  it("does not count a kernel restart against the next execution's deadline", async () => {
    // The preload is missing at start; once the session writes it, the kernel's restart imports it
    // and takes two seconds, far beyond the 200 ms limit plus 300 ms grace of the next execution.
    agent = await startAgent({ transport: 'stdio', preload: ['sandpool_slow_preload'], client: { executeGraceMs: 300 } });
    await agent.client.execute(run('open("sandpool_slow_preload.py", "w").write("import time\\ntime.sleep(2)\\n")'));
    const crash = await agent.client.execute(run('import os\nos._exit(1)'));
    expect(crash.sessionState).toBe('restarted');
    const next = await agent.client.execute(run('"after restart"', { timeoutMs: 200 }));
    expect(next).toMatchObject({ status: 'Succeeded', result: 'after restart', sessionState: 'kept' });
    expect(agent.client.closed).toBe(false);
  });

  it('reports versions and installed packages', async () => {
    agent = await startAgent({ transport: 'stdio' });
    const info = await agent.client.info();
    expect(info.protocol).toBe(1);
    expect(info.runtimes.map((r) => r.name)).toEqual(['python', 'node']);
    expect(info.runtimes[1]?.version).toBe(process.versions.node);
    expect(info.packages.length).toBeGreaterThan(0);
  });
});

describe('agent client against a hostile agent', () => {
  const dirs: string[] = [];
  const servers: Server[] = [];

  async function hostile(script: (socket: Socket) => void, requestTimeoutMs?: number): Promise<AgentClient> {
    const dir = mkdtempSync(path.join(tmpdir(), 'sandpool-hostile-'));
    dirs.push(dir);
    const socketPath = path.join(dir, 's');
    const server = createServer((socket) => {
      socket.on('error', () => undefined); // the client hangs up on us; that is the point
      script(socket);
    });
    servers.push(server);
    server.listen(socketPath);
    await once(server, 'listening');
    const socket = connect(socketPath);
    await once(socket, 'connect');
    return new AgentClient(socket, { maxFrameBytes: 1 << 20, requestTimeoutMs });
  }

  afterEach(() => {
    for (const server of servers.splice(0)) server.close();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('closes on a frame over the size limit instead of buffering it', async () => {
    const client = await hostile((socket) => {
      socket.on('data', () => socket.write(`{"type":"pong","id":1,"pad":"${'x'.repeat(2 << 20)}`));
    });
    await expect(client.ping(5000)).rejects.toThrow(/protocol violation.*exceeds/);
    expect(client.closed).toBe(true);
  });

  it('closes on frames that are not the protocol', async () => {
    const client = await hostile((socket) => {
      socket.on('data', () => socket.write('{"type":42,"id":1}\n'));
    });
    await expect(client.ping(5000)).rejects.toThrow(/protocol violation/);
  });

  it('rejects (never throws out of the stream) on a wrong frame for an execution or a download', async () => {
    const client = await hostile((socket) => {
      socket.on('data', (data: Buffer) => {
        for (const line of data.toString().split('\n').filter(Boolean)) {
          const { id } = JSON.parse(line) as { id: number };
          socket.write(`${JSON.stringify({ type: 'chunk', id, data: 'AAAA' })}\n`);
        }
      });
    });
    await expect(client.execute(run('1'))).rejects.toThrow(/protocol violation.*unexpected chunk/);
    expect(client.closed).toBe(true);
    const other = await hostile((socket) => {
      socket.on('data', (data: Buffer) => {
        const { id } = JSON.parse(data.toString()) as { id: number };
        socket.write(`${JSON.stringify({ type: 'chunk', id, data: 'AAAA' })}\n`);
      });
    });
    await expect(other.download('f')).rejects.toThrow(/chunk before file/);
    await new Promise((r) => setTimeout(r, 50));
    expect(other.closed).toBe(true);
  });

  it('ignores frame types of a newer agent', async () => {
    const client = await hostile((socket) => {
      socket.on('data', (data: Buffer) => {
        const id = (JSON.parse(data.toString()) as { id: number }).id;
        socket.write(`${JSON.stringify({ type: 'progress', id, percent: 50 })}\n`);
        socket.write(`${JSON.stringify({ type: 'pong', id, busy: false })}\n`);
      });
    });
    await expect(client.ping(5000)).resolves.toBeTypeOf('number');
    client.close();
  });

  it('closes when an answer has the wrong shape for its request', async () => {
    const client = await hostile((socket) => {
      socket.on('data', (data: Buffer) => {
        const id = (JSON.parse(data.toString()) as { id: number }).id;
        socket.write(`${JSON.stringify({ type: 'result', id, outcome: { status: 'Maybe' } })}\n`);
      });
    });
    await expect(client.execute(run('1'))).rejects.toThrow(/protocol violation.*status/);
  });

  it('refuses file info that points outside the data dir', async () => {
    const client = await hostile((socket) => {
      socket.on('data', (data: Buffer) => {
        const id = (JSON.parse(data.toString()) as { id: number }).id;
        const file = { name: 'passwd', path: '../../etc/passwd', type: 'file', sizeInBytes: 1, lastModifiedAt: 'x' };
        socket.write(`${JSON.stringify({ type: 'result', id, file })}\n`);
      });
    });
    await expect(client.stat('passwd')).rejects.toThrow(/escapes the data directory/);
  });

  it('caps output beyond what was asked for, even if the agent ignores the cap', async () => {
    const client = await hostile((socket) => {
      socket.on('data', (data: Buffer) => {
        const id = (JSON.parse(data.toString()) as { id: number }).id;
        for (let i = 0; i < 50; i++)
          socket.write(`${JSON.stringify({ type: 'output', id, stream: 'stdout', data: 'y'.repeat(10_000) })}\n`);
        const outcome = { status: 'Succeeded', result: 1, sessionState: 'kept', executionTimeInMilliseconds: 1 };
        socket.write(`${JSON.stringify({ type: 'result', id, outcome })}\n`);
      });
    });
    const outcome = await client.execute(run('x', { outputMaxBytes: 1000 }));
    expect(outcome.stdoutTruncated).toBe(true);
    expect(outcome.stdout.length).toBeLessThan(1400);
    client.close();
  });

  it('fails a download whose agent goes silent instead of waiting forever', async () => {
    const client = await hostile((socket) => {
      socket.once('data', (data: Buffer) => {
        const id = (JSON.parse(data.toString()) as { id: number }).id;
        const file = { name: 'f', path: 'f', type: 'file', sizeInBytes: 10, lastModifiedAt: 'x' };
        socket.write(`${JSON.stringify({ type: 'file', id, file })}\n`);
      });
    }, 300);
    const { body } = await client.download('f');
    const reading = (async () => {
      for await (const _ of body) {
        // nothing arrives
      }
    })();
    await expect(reading).rejects.toThrow(/sent nothing/);
    client.close();
  });

  it('fails an upload to an agent that stops reading', async () => {
    const client = await hostile((socket) => socket.pause(), 300);
    async function* endless(): AsyncGenerator<Uint8Array> {
      for (;;) yield Buffer.alloc(1 << 20);
    }
    await expect(client.upload('f', endless(), { maxBytes: 2 ** 40 })).rejects.toThrow(/stopped reading/);
    expect(client.closed).toBe(true);
  });
});
