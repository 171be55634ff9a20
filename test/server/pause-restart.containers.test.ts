/**
 * Paused sessions survive a SIGKILL of the server: the built CLI serves two container pools, a
 * session of each is paused, the server is killed with SIGKILL, one pool's definition disappears
 * (as when a DELETE was cut short by the kill) and the server starts again on the same data dir.
 * The live pool's paused session resumes with its variables and files; the deleted pool's paused
 * data is gone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { podmanAvailable } from '../container/helpers.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'dist', 'cli', 'main.js');
const ADMIN = 'pause-restart-admin-key-0123';
const children: ChildProcess[] = [];
let dataDir = '';

async function serve(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [cli, 'serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--pools', 'none'], {
    env: { ...process.env, SANDPOOL_ADMIN_KEY: ADMIN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
    });
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /serving on (http:\/\/[^\s]+)/.exec(out);
      if (m !== null) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${err.slice(-2000)}`)));
  });
  return { child, url };
}

function client(url: string) {
  return async (path: string, init: RequestInit = {}): Promise<Response> =>
    await fetch(`${url}${path}`, { ...init, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' } });
}

async function until(check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 250));
  }
}

const pool = {
  backend: 'container',
  properties: {
    containerType: 'PythonLTS',
    scaleConfiguration: { maxConcurrentSessions: 4, readySessionInstances: 1 },
    limits: { memoryMb: 512 },
  },
};

describe.skipIf(!podmanAvailable())('paused sessions across a SIGKILL of the server', () => {
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    if (dataDir !== '') await rm(dataDir, { recursive: true, force: true });
  });

  test('the live pool’s paused session resumes; the deleted pool’s paused data is removed', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'sandpool-pause-restart-'));
    const first = await serve();
    let request = client(first.url);
    for (const name of ['keep', 'gone']) {
      expect((await request(`/pools/${name}`, { method: 'PUT', body: JSON.stringify(pool) })).status).toBe(201);
    }
    const ready = async (name: string) =>
      ((await (await request(`/pools/${name}`)).json()) as { properties: { provisioningState: string } }).properties
        .provisioningState === 'Succeeded';
    await until(async () => (await ready('keep')) && (await ready('gone')), 240_000);
    for (const name of ['keep', 'gone']) {
      const run = await request(`/pools/${name}/executions?identifier=alpha-1`, {
        method: 'POST',
        body: JSON.stringify({ code: 'x = 41\nopen("kept.txt", "w").write("on disk")' }),
      });
      expect(run.status).toBe(200);
      const paused = await request(`/pools/${name}/session/pause?identifier=alpha-1`, { method: 'POST' });
      expect(paused.status).toBe(200);
    }
    expect(readdirSync(join(dataDir, 'pool-data', 'keep', 'paused'))).toHaveLength(1);
    expect(readdirSync(join(dataDir, 'pool-data', 'gone', 'paused'))).toHaveLength(1);

    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    // The "gone" pool was deleted, but the kill came before its paused data was removed.
    await rm(join(dataDir, 'pools', 'gone.json'));

    const second = await serve();
    request = client(second.url);
    await until(() => ready('keep'), 240_000);
    expect(existsSync(join(dataDir, 'pool-data', 'gone'))).toBe(false);
    const run = await request('/pools/keep/executions?identifier=alpha-1', {
      method: 'POST',
      body: JSON.stringify({ code: 'x + 1, open("kept.txt").read()' }),
    });
    const body = (await run.json()) as { result: { executionResult: unknown } };
    expect(body.result.executionResult).toBe("(42, 'on disk')");
    expect(readdirSync(join(dataDir, 'pool-data', 'keep', 'paused'))).toEqual([]);
    second.child.kill('SIGTERM');
    await new Promise((r) => second.child.once('exit', r));
  }, 900_000);
});
