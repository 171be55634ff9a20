/**
 * The real clients' call sequences, sent through the HTTP libraries those clients use (requests,
 * httpx, aiohttp from Debian, installed by setup), against a Python container pool: each script in
 * client-sequences/ makes the same calls, in the same order, with the same headers — including the
 * ones a client carries from one call to the next — as the upstream client, and reads the answers
 * the same way. Semantic Kernel's shared httpx client sends its upload with the Content-Type
 * `application/json` left over from the execution before it; Azure accepts that, and so must we.
 */

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { SessionPool } from '../../src/index.js';
import { ADMIN_KEY, containerBackendAvailable, newIdentifier, startServer, type Harness } from './helpers.js';

const available = await containerBackendAvailable();
// Debian's interpreter: python3-requests, python3-httpx and python3-aiohttp live in its dist-packages.
const PYTHON = '/usr/bin/python3';
const SCRIPTS = join(import.meta.dirname, 'client-sequences');

function runClient(script: string, endpoint: string, identifier: string): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [join(SCRIPTS, script), endpoint, ADMIN_KEY, identifier], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${script} exited with ${code}:\n${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}'));
    });
  });
}

describe.skipIf(!available || !existsSync(PYTHON))('real client call sequences (requests, httpx, aiohttp)', () => {
  let h: Harness;
  let ep: string;

  beforeAll(async () => {
    h = await startServer({
      withDefaultPool: false,
      pools: [
        new SessionPool({
          name: 'python',
          backend: new ContainerBackend(),
          containerType: 'PythonLTS',
          readySessionInstances: 1,
          maxConcurrentSessions: 6,
          limits: { memoryMb: 512 },
        }),
      ],
    });
    ep = `${h.url}/pools/python`;
  }, 180_000);
  afterAll(async () => {
    await h?.close();
  }, 60_000);

  test('Semantic Kernel Python: the upload carries Content-Type application/json from the execution, and works', async () => {
    const r = await runClient('semantic_kernel_python.py', ep, newIdentifier());
    expect(r['first']).toEqual({ status: 'Success', result: 41, stdout: '', stderr: '' });
    // What httpx really sent: the client's leftover header, not a multipart one.
    expect(r['uploadSentContentType']).toBe('application/json');
    expect(r['uploadStatus']).toBe(200);
    expect(r['upload']).toEqual({ filename: 'data.csv', size: 8 });
    expect(r['list']).toEqual([['data.csv', 8]]);
    expect(r['download']).toBe('a,b\n1,2\n');
    expect(r['second']).toMatchObject({ status: 'Success', result: 49 });
  }, 180_000);

  test('LangChain SessionsPythonREPLTool: execute, upload (data={} + files), list, download, close', async () => {
    const r = await runClient('langchain.py', ep, `lc|${newIdentifier()}`.slice(0, 60));
    expect(r['first']).toMatchObject({ result: 41, stdout: '', stderr: '' });
    expect(r['uploadStatus']).toBe(200);
    expect(r['upload']).toMatchObject({ filename: 'report v1.txt', size: 20 });
    expect(r['list']).toEqual([['report v1.txt', 20]]);
    expect(r['download']).toBe('hello from langchain');
    expect(r['second']).toMatchObject({ result: 42 });
    expect(r['deleteStatus']).toBe(204);
  }, 180_000);

  test('llama-index AzureCodeInterpreterToolSpec: access_token_provider, /mnt/data/ names', async () => {
    const r = await runClient('llama_index.py', ep, newIdentifier());
    expect(r['first']).toMatchObject({ status: 'Success', result: 41 });
    expect(r['uploadStatus']).toBe(200);
    expect(r['upload']).toEqual([expect.objectContaining({ filename: 'numbers.txt', size: 6 })]);
    expect(r['list']).toEqual([['numbers.txt', 6]]);
    expect(r['download']).toBe('1 2 3\n');
    expect(r['second']).toMatchObject({ status: 'Success', result: 47 });
  }, 180_000);

  test('AutoGen ACADynamicSessionsCodeExecutor: setup cells, FormData upload, relative read, list, download', async () => {
    const r = await runClient('autogen.py', ep, newIdentifier());
    expect(r['packages']).toContain('numpy');
    expect(r['cwd']).toBe('Success');
    expect(r['uploadStatus']).toBe(200);
    expect(r['read']).toEqual(['Success', '3,4\n']);
    expect(r['list']).toEqual(['points.csv']);
    expect(r['download']).toBe('x,y\n3,4\n');
    expect(r['failure']).toEqual([true, true]);
  }, 180_000);
});
