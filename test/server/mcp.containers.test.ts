/**
 * The MCP tools on real Python container sessions with the real `@modelcontextprotocol/sdk`
 * client: over Streamable HTTP (`/mcp` of the server) and over stdio (spawning the built
 * `sandpool mcp --pool python --backend container`). State, figures as image content, files,
 * shell, and two clients kept apart.
 */

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { SessionPool } from '../../src/index.js';
import { call, defineMcpCases, textOf } from '../suites/mcp-suite.js';
import { ADMIN_KEY, containerBackendAvailable, startServer, type Harness } from './helpers.js';

const available = await containerBackendAvailable();
const cli = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');

describe.skipIf(!available)('MCP on Python containers', () => {
  let h: Harness;

  beforeAll(async () => {
    const pool = new SessionPool({
      name: 'python',
      backend: new ContainerBackend(),
      containerType: 'PythonLTS',
      readySessionInstances: 3,
      maxConcurrentSessions: 10,
      limits: { memoryMb: 512 },
    });
    h = await startServer({ withDefaultPool: false, pools: [pool] });
  }, 180_000);
  afterAll(async () => {
    await h?.close();
    const left = execFileSync(
      'podman',
      ['ps', '-a', '--filter', `label=sandpool.owner-pid=${process.pid}`, '--format', '{{.Names}}'],
      { encoding: 'utf8' },
    );
    expect(left.trim()).toBe('');
  }, 120_000);

  describe('over Streamable HTTP (/mcp)', () => {
    defineMcpCases({
      connect: async () => {
        const client = new Client({ name: 'sandpool-test', version: '1.0.0' });
        // The only pool is named python: /mcp picks it without ?pool=.
        await client.connect(
          new StreamableHTTPClientTransport(new URL(`${h.url}/mcp`), {
            requestInit: { headers: { authorization: `Bearer ${ADMIN_KEY}` } },
          }),
        );
        return client;
      },
      language: 'python',
      files: true,
      shell: true,
      sharedPool: true,
      timeoutMs: 120_000,
    });
  });

  describe('over stdio (sandpool mcp --pool python --backend container)', () => {
    beforeAll(() => {
      if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build (npm test's setup does)`);
    });

    const connect = async (extraArgs: string[] = []): Promise<Client> => {
      const client = new Client({ name: 'sandpool-test', version: '1.0.0' });
      await client.connect(
        new StdioClientTransport({
          command: process.execPath,
          args: [cli, 'mcp', '--pool', 'python', '--backend', 'container', '--ready', '1', ...extraArgs],
          env: { ...(process.env as Record<string, string>) },
          stderr: 'pipe',
        }),
      );
      return client;
    };

    defineMcpCases({ connect, language: 'python', files: true, shell: true, sharedPool: false, timeoutMs: 180_000 });

    it('binds --env to the sandbox: Python and its child processes see it', async () => {
      const client = await connect(['--env', 'MCP_TEST_TOKEN=from-cli']);
      try {
        const code =
          'import os, subprocess\n(os.environ["MCP_TEST_TOKEN"], subprocess.run(["sh", "-c", "echo $MCP_TEST_TOKEN"], capture_output=True, text=True).stdout.strip())';
        expect(textOf(await call(client, 'run_code', { code }))).toContain("('from-cli', 'from-cli')");
      } finally {
        await client.close();
      }
    }, 180_000);
  });
});
