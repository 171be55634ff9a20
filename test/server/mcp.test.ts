/**
 * The MCP server with the real `@modelcontextprotocol/sdk` client on QuickJS sessions: Streamable
 * HTTP at /mcp of the server (auth, origin check, session binding, release on close) and stdio
 * through the built CLI (`sandpool mcp --pool javascript --backend quickjs`).
 */

import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { call, defineMcpCases, textOf } from '../suites/mcp-suite.js';
import { ADMIN_KEY, jsPool, startServer, type Harness } from './helpers.js';

const cli = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');

async function httpClient(url: string, token = ADMIN_KEY): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: 'sandpool-test', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

describe('MCP over Streamable HTTP (/mcp)', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startServer({ pools: [jsPool('js'), jsPool('other')] });
  });
  afterAll(async () => {
    await h?.close();
  });

  defineMcpCases({
    connect: async () => (await httpClient(`${h.url}/mcp?pool=js`)).client,
    language: 'javascript',
    files: false,
    shell: false,
    sharedPool: true,
  });

  it('requires the same credential as every other route', async () => {
    const init = {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
    };
    const anonymous = await fetch(`${h.url}/mcp?pool=js`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify(init),
    });
    expect(anonymous.status).toBe(401);
    await expect(httpClient(`${h.url}/mcp?pool=js`, 'wrong-key')).rejects.toThrow();
  });

  it('refuses cross-origin requests, unknown pools and unknown session ids', async () => {
    const init = {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
    };
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const crossOrigin = await h.request('/mcp?pool=js', {
      method: 'POST',
      headers: { ...headers, origin: 'http://evil.example' },
      body: JSON.stringify(init),
    });
    expect(crossOrigin.status).toBe(403);
    const unknownPool = await h.request('/mcp?pool=nope', { method: 'POST', headers, body: JSON.stringify(init) });
    expect(unknownPool.status).toBe(404);
    // Two pools and none named "python": the pool must be named.
    const unnamed = await h.request('/mcp', { method: 'POST', headers, body: JSON.stringify(init) });
    expect(unnamed.status).toBe(404);
    const unknownSession = await h.request('/mcp?pool=js', {
      method: 'POST',
      headers: { ...headers, 'mcp-session-id': 'made-up' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    });
    expect(unknownSession.status).toBe(404);
    const notInit = await h.request('/mcp?pool=js', {
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    });
    expect(notInit.status).toBe(400);
  });

  it('releases the connection’s sandbox when the MCP session is terminated', async () => {
    const pool = h.server.registry.get('other')!.pool;
    const { client, transport } = await httpClient(`${h.url}/mcp?pool=other`);
    await call(client, 'run_code', { code: 'var kept = 1' });
    expect(pool.stats().allocated).toBe(1);
    const destroyed = new Promise<string>((resolve) => pool.once('sessionDestroyed', (e) => resolve(e.reason)));
    await transport.terminateSession();
    await client.close();
    expect(await destroyed).toBe('stopped');
    expect(pool.stats().allocated).toBe(0);
  });

  it('streams output as progress notifications to a client that asks for them', async () => {
    const { client } = await httpClient(`${h.url}/mcp?pool=js`);
    try {
      const messages: string[] = [];
      const result = await client.callTool(
        {
          name: 'run_code',
          arguments: { code: 'console.log("one"); await new Promise((r) => setTimeout(r, 50)); console.log("two"); 3' },
        },
        undefined,
        { onprogress: (p) => messages.push(p.message ?? '') },
      );
      expect(textOf(result as never)).toContain('result: 3');
      expect(messages.join('')).toBe('one\ntwo\n');
    } finally {
      await client.close();
    }
  });
});

describe('MCP over stdio (sandpool mcp)', () => {
  beforeAll(() => {
    if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build (npm test's setup does)`);
  });

  defineMcpCases({
    connect: async () => {
      const client = new Client({ name: 'sandpool-test', version: '1.0.0' });
      await client.connect(
        new StdioClientTransport({
          command: process.execPath,
          args: [cli, 'mcp', '--pool', 'javascript', '--backend', 'quickjs', '--env', 'MCP_TEST_TOKEN=from-cli'],
          stderr: 'pipe',
        }),
      );
      return client;
    },
    language: 'javascript',
    files: false,
    shell: false,
    sharedPool: false,
  });

  it('binds --env to the connection’s sandbox (read-only `env` in isolates)', async () => {
    const client = new Client({ name: 'sandpool-test', version: '1.0.0' });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [cli, 'mcp', '--pool', 'javascript', '--backend', 'quickjs', '--env', 'MCP_TEST_TOKEN=from-cli'],
      }),
    );
    try {
      expect(textOf(await call(client, 'run_code', { code: 'env.MCP_TEST_TOKEN' }))).toContain('result: from-cli');
    } finally {
      await client.close();
    }
  });

  it('explains a bad command line on stderr with exit code 2', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, [cli, 'mcp'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--pool is required');
    const help = spawnSync(process.execPath, [cli, 'mcp', '--help'], { encoding: 'utf8', timeout: 30_000 });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('run_code');
  });
});
