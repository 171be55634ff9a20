/**
 * The edges of a server's life, as a rolling restart meets them. Start: the server listens before
 * its stored pool definitions are loaded, and a request in that gap waits for them rather than be
 * told an existing pool does not exist (404). Drain: close() ends a kept-alive connection a client
 * keeps busy after its current answer (Node goes on serving such a connection after
 * server.close()), so a busy client cannot hold the drain, and a cluster member's identifiers,
 * until the grace period cuts it off.
 */

import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { QuickJSBackend } from '../../backends/quickjs/index.js';
import { SessionPool } from '../../src/index.js';
import { createServer, type LogRecord, type SandpoolServer } from '../../src/server/index.js';
import { FakeBackend } from '../helpers/fake-backend.js';
import { ADMIN_KEY, json, newIdentifier, startServer, testServerOptions, type Harness } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const auth = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' };
const executeBody = (code: string) =>
  JSON.stringify({ properties: { codeInputType: 'inline', executionType: 'synchronous', code } });

describe('a request made while the stored definitions load', () => {
  let server: SandpoolServer | undefined;
  let dataDir: string | undefined;
  let release = () => {};
  afterEach(async () => {
    release();
    await server?.close();
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
    server = undefined;
  });

  /** A server whose one stored pool's backend comes when the test lets it: until then it is loading. */
  async function startLoading(options: { maxAcquireWaitSeconds?: number } = {}) {
    dataDir = await mkdtemp(join(tmpdir(), 'sandpool-start-'));
    await mkdir(join(dataDir, 'pools'));
    await writeFile(
      join(dataDir, 'pools', 'stored.json'),
      JSON.stringify({ name: 'stored', backend: 'quickjs', properties: { containerType: 'NodeLTS' } }),
    );
    const released = new Promise<void>((r) => {
      release = r;
    });
    const logs: LogRecord[] = [];
    server = createServer({
      backends: {
        quickjs: async () => {
          await released;
          return new QuickJSBackend();
        },
      },
      ...testServerOptions(dataDir, logs),
      ...options,
    });
    const listening = server.listen({ host: '127.0.0.1', port: 0 });
    await expect.poll(() => server?.httpServer?.listening, { timeout: 5000, interval: 10 }).toBe(true);
    const { port } = server.httpServer!.address() as { port: number };
    const url = `http://127.0.0.1:${port}`;
    const execute = () =>
      fetch(`${url}/pools/stored/code/execute?identifier=${newIdentifier()}`, {
        method: 'POST',
        headers: auth,
        body: executeBody('6 * 7'),
      });
    return { url, logs, listening, execute };
  }

  it('waits for its pool and is answered from it, while /healthz answers at once', async () => {
    const { url, logs, listening, execute } = await startLoading();
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    let answered = false;
    const early = execute().then((response) => {
      answered = true;
      return response;
    });
    await sleep(300);
    expect(answered).toBe(false);
    release();
    const response = await early;
    const body = await json(response);
    expect(response.status, JSON.stringify(body)).toBe(200);
    expect(body['properties'].result).toBe(42);
    await listening;
    expect(logs.filter((l) => l.msg === 'audit' && l['status'] === 404)).toEqual([]);
  });

  it('is answered 503 with Retry-After when the definitions take longer than the acquire wait', async () => {
    const { execute, listening } = await startLoading({ maxAcquireWaitSeconds: 0.3 });
    const refused = await execute();
    const body = await json(refused);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('2');
    expect(body['error'].code).toBe('SessionPoolUnavailable');
    expect(body['error'].message).toMatch(/still loading its pool definitions/);
    // Asked again once the definitions are in, it is served.
    release();
    await listening;
    expect((await execute()).status).toBe(200);
  });
});

describe('close() under a client that keeps its connection busy', () => {
  let h: Harness | undefined;
  let socket: Socket | undefined;
  afterEach(async () => {
    socket?.destroy();
    await h?.close();
    h = undefined;
  });

  it('answers the request it was running with Connection: close, and serves nothing more on that connection', async () => {
    // A fake backend's `sleep:MS` runs without blocking the event loop (QuickJS would), so the
    // drain can begin while an execution is running.
    const pool = new SessionPool({
      name: 'fake',
      backend: new FakeBackend(),
      containerType: 'PythonLTS',
      readySessionInstances: 1,
    });
    h = await startServer({ pools: [pool], withDefaultPool: false });
    const { port } = new URL(h.url);
    // One kept-alive connection, written by hand so nothing but the server decides its fate (a
    // load balancer or a member forwarding to this one reuses its connections the same way).
    const id = newIdentifier();
    const client = connect(Number(port), '127.0.0.1');
    socket = client;
    await once(client, 'connect');
    let received = '';
    client.setEncoding('latin1');
    client.on('data', (chunk: string) => {
      received += chunk;
    });
    const ended = once(client, 'close');
    const request = (code: string) => {
      const body = executeBody(code);
      client.write(
        `POST /pools/fake/code/execute?identifier=${id} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${ADMIN_KEY}\r\n` +
          `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    };
    const answers = () => received.split('HTTP/1.1 ').slice(1);
    const connectionHeader = (answer: string) =>
      /\r\nconnection: *([^\r]*)\r\n/i.exec(answer.slice(0, answer.indexOf('\r\n\r\n') + 2))?.[1]?.toLowerCase();
    request('first');
    await expect.poll(() => answers().length, { timeout: 10_000 }).toBe(1);
    expect(answers()[0]).toMatch(/^200 /);
    expect(connectionHeader(answers()[0]!)).toBe('keep-alive');
    // The second request runs for 300 ms; the drain begins while it does.
    request('sleep:300');
    await sleep(100);
    const closed = h.server.close();
    await expect.poll(() => answers().length, { timeout: 10_000 }).toBe(2);
    const second = answers()[1]!;
    expect(second).toMatch(/^200 /);
    expect(connectionHeader(second)).toBe('close');
    expect(second).toContain('"result":"sleep:300"');
    // Whatever the client sends next on it is never served: the server ends the connection.
    if (!client.destroyed) request('third');
    await ended;
    expect(answers()).toHaveLength(2);
    await closed;
    expect(h.logs.filter((l) => l.msg.startsWith('drain:'))).toEqual([]);
  });
});
