/**
 * The real LlamaIndex.TS client (`@llamaindex/azure` AzureDynamicSessionTool), pointed at sandpool by
 * changing only the endpoint and the credential (a static token provider). No network beyond loopback.
 */

import { AzureDynamicSessionTool } from '@llamaindex/azure';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { SessionPool } from '../../src/index.js';
import { ADMIN_KEY, containerBackendAvailable, jsPool, newIdentifier, startServer, type Harness } from './helpers.js';

const containers = await containerBackendAvailable();

let h: Harness;

beforeAll(async () => {
  const pools = [jsPool('javascript', { maxConcurrentSessions: 20 })];
  if (containers) {
    pools.push(
      new SessionPool({
        name: 'python',
        backend: new ContainerBackend(),
        containerType: 'PythonLTS',
        readySessionInstances: 1,
        maxConcurrentSessions: 4,
      }),
    );
  }
  h = await startServer({ pools, withDefaultPool: false });
}, 120_000);
afterAll(async () => {
  await h.close();
}, 60_000);

describe('@llamaindex/azure AzureDynamicSessionTool', () => {
  test('call() executes through python/execute and reads the flat result', async () => {
    // The tool logs its payloads with console.log; keep test output readable.
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      const sessionId = newIdentifier();
      const tool = new AzureDynamicSessionTool({
        poolManagementEndpoint: `${h.url}/pools/javascript`,
        sessionId,
        azureADTokenProvider: async () => ADMIN_KEY,
      });
      const first = (await tool.call({ code: 'var answer = 6 * 7; console.log("computed"); answer' })) as Record<string, unknown>;
      expect(first).toMatchObject({ status: 'Success', result: 42, stdout: 'computed\n', stderr: '' });
      // Same sessionId, same session: state is kept.
      const second = (await tool.call({ code: 'answer + 1' })) as Record<string, unknown>;
      expect(second['result']).toBe(43);
      const failed = (await tool.call({ code: 'throw new TypeError("nope")' })) as Record<string, unknown>;
      expect(failed['status']).toBe('Failure');
      expect(String(failed['stderr'])).toContain('nope');
      // The server saw exactly that session.
      const sessions = await (await h.request('/pools/javascript/listSessions')).json();
      expect((sessions as { value: { identifier: string }[] }).value.map((s) => s.identifier)).toContain(sessionId);
    } finally {
      log.mockRestore();
    }
  });

  test('a wrong credential is refused (401); the tool turns the envelope into its own error text', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      const tool = new AzureDynamicSessionTool({
        poolManagementEndpoint: `${h.url}/pools/javascript/`,
        sessionId: newIdentifier(),
        azureADTokenProvider: async () => 'not-the-key',
      });
      const out = (await tool.call({ code: '1' })) as Record<string, any>;
      // The tool reads `result` from the 401 envelope, finds none, and reports its own failure.
      expect(out).toMatchObject({ result: '', stdout: '' });
      expect(String(out['stderr'])).toMatch(/Failed to execute/);
      const audit = h.logs.filter((r) => r['type'] === 'audit' && r['operation'] === 'gen0.execute').map((r) => r['status']);
      expect(audit).toContain(401);
    } finally {
      log.mockRestore();
    }
  });
});

describe.skipIf(!containers)('@llamaindex/azure AzureDynamicSessionTool on a Python pool', () => {
  test('call(), uploadFile(), listFiles(), downloadFile()', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      const tool = new AzureDynamicSessionTool({
        poolManagementEndpoint: `${h.url}/pools/python`,
        sessionId: newIdentifier(),
        azureADTokenProvider: async () => ADMIN_KEY,
      });
      const out = (await tool.call({ code: 'import math\nprint("pi")\nround(math.pi, 2)' })) as Record<string, unknown>;
      expect(out).toMatchObject({ status: 'Success', result: 3.14, stdout: 'pi\n', stderr: '' });
      const uploaded = (await tool.uploadFile({
        data: new Blob(['col\n1\n2\n']),
        remoteFilename: 'numbers.csv',
      })) as unknown as Record<string, unknown>;
      expect(uploaded).toMatchObject({ filename: 'numbers.csv', size: 8 });
      const listed = (await tool.listFiles()) as unknown as Record<string, unknown>[];
      expect(listed.map((f) => f['filename'])).toEqual(['numbers.csv']);
      const stream = (await tool.downloadFile({ remoteFilename: 'numbers.csv' })) as ReadableStream<Uint8Array>;
      expect(await new Response(stream).text()).toBe('col\n1\n2\n');
      const summed = (await tool.call({
        code: 'import pandas as pd\nint(pd.read_csv("/mnt/data/numbers.csv")["col"].sum())',
      })) as Record<string, unknown>;
      expect(summed['result']).toBe(3);
    } finally {
      log.mockRestore();
    }
  }, 120_000);
});
