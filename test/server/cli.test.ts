/**
 * The built CLI (`dist/cli/main.js`, what `bin.sandpool` runs): `serve` on loopback with a real
 * QuickJS pool, then every client command against it over HTTP, then SIGTERM draining.
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'dist', 'cli', 'main.js');
let dataDir: string;
let server: ChildProcess;
let endpoint: string;
let token: string;
/** What serve wrote to stderr (JSON log lines). */
let serveLog = '';
const ADMIN = 'cli-admin-key-abcdefghijkl';

function run(args: string[], input?: string, env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], {
    input,
    encoding: 'utf8',
    env: { ...process.env, SANDPOOL_ENDPOINT: endpoint, SANDPOOL_TOKEN: token, SANDPOOL_ADMIN_KEY: '', ...env },
    timeout: 60_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build (npm test's setup does)`);
  dataDir = await mkdtemp(join(tmpdir(), 'sandpool-cli-'));
  endpoint = 'http://127.0.0.1:1';
  token = '';
  // A development token signed by the data dir's key; serve started afterwards trusts it.
  const minted = run(['token', '--data-dir', dataDir, '--roles', 'executor,contributor', '--json']);
  expect(minted.code).toBe(0);
  token = (JSON.parse(minted.stdout) as { token: string }).token;
  const args = [
    'serve',
    '--listen',
    '127.0.0.1:0',
    '--data-dir',
    dataDir,
    '--pools',
    'javascript',
    '--e2b-template',
    'js=javascript',
  ];
  server = spawn(process.execPath, [cli, ...args], {
    env: { ...process.env, SANDPOOL_ADMIN_KEY: ADMIN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  endpoint = await new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    server.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      serveLog += c.toString();
    });
    server.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /serving on (http:\/\/[^\s]+)/.exec(out);
      if (m !== null) resolve(m[1]!);
    });
    server.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
}, 60_000);

afterAll(async () => {
  if (server.exitCode === null) server.kill('SIGKILL');
  await rm(dataDir, { recursive: true, force: true });
});

describe('sandpool CLI', () => {
  test('serve answers /healthz at once, logs how it sets up its pools, and /readyz turns 200', async () => {
    expect((await fetch(`${endpoint}/healthz`)).status).toBe(200);
    await expect.poll(async () => (await fetch(`${endpoint}/readyz`)).status, { timeout: 30_000, interval: 100 }).toBe(200);
    const body = (await (await fetch(`${endpoint}/readyz`)).json()) as { pools: { name: string; state: string }[] };
    expect(body.pools).toEqual([expect.objectContaining({ name: 'javascript', state: 'ready' })]);
    const logged = () =>
      serveLog
        .split('\n')
        .filter(Boolean)
        .map((line) => (JSON.parse(line) as { msg: string }).msg);
    // Said within a second of being ready.
    await expect.poll(() => logged().includes('built-in pools ready'), { timeout: 5_000 }).toBe(true);
    const messages = logged();
    expect(messages).toEqual(
      expect.arrayContaining([
        'built-in pool "javascript": trying the isolated-vm backend',
        'built-in pool "javascript" uses the isolated-vm backend',
        'pool "javascript": 1 of 2 ready sessions up',
        'pool "javascript" is ready',
        'built-in pools ready',
      ]),
    );
    // Listening came first: nothing about pools was logged before it.
    expect(messages.indexOf('listening')).toBeLessThan(
      messages.indexOf('built-in pool "javascript": trying the isolated-vm backend'),
    );
  });

  test('serve speaks E2B under /e2b: the real SDK, configured by environment variables', async () => {
    const { Sandbox } = await import('@e2b/code-interpreter');
    const env = { E2B_API_URL: `${endpoint}/e2b`, E2B_SANDBOX_URL: `${endpoint}/e2b`, E2B_API_KEY: token };
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);
    try {
      const sandbox = await Sandbox.create('js');
      await sandbox.runCode('var n = 41');
      expect((await sandbox.runCode('n + 1')).text).toBe('42');
      expect(await sandbox.kill()).toBe(true);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  test('--help on every command', () => {
    for (const args of [
      ['--help'],
      ['serve', '--help'],
      ['pool', '--help'],
      ['exec', '--help'],
      ['files', '--help'],
      ['sessions', '--help'],
      ['token', '--help'],
      ['keys', '--help'],
    ]) {
      const r = run(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/^Usage: sandpool/);
    }
    const bad = run(['exec', '--frobnicate']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--help/);
  });

  test('pool list/create/get/update/delete with --json', () => {
    const list = run(['pool', 'list', '--json']);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout).value.map((p: { name: string }) => p.name)).toEqual(['javascript']);
    const created = run([
      'pool',
      'create',
      'scratch',
      '--backend',
      'quickjs',
      '--container-type',
      'NodeLTS',
      '--ready',
      '0',
      '--max',
      '3',
      '--json',
    ]);
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout).properties.scaleConfiguration).toEqual({
      maxConcurrentSessions: 3,
      readySessionInstances: 0,
    });
    const human = run(['pool', 'get', 'scratch']);
    expect(human.stdout).toMatch(/^NAME\s+TYPE\s+BACKEND/);
    expect(human.stdout).toMatch(/scratch\s+NodeLTS\s+quickjs/);
    expect(run(['pool', 'update', 'scratch', '--max', '4', '--json']).code).toBe(0);
    expect(run(['pool', 'delete', 'scratch']).code).toBe(0);
    const gone = run(['pool', 'get', 'scratch']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/404/);
  });

  test('exec: code from an argument, a file and stdin; exit code follows the status', async () => {
    const arg = run(['exec', '--pool', 'javascript', '--id', 'cli-session-1', 'var n = 20; console.log("n set"); n + 1']);
    expect(arg.code, arg.stderr).toBe(0);
    expect(arg.stdout).toBe('n set\n21\n');
    const file = join(dataDir, 'code.js');
    await writeFile(file, 'n * 2');
    expect(run(['exec', '--pool', 'javascript', '--id', 'cli-session-1', '--file', file]).stdout).toBe('40\n');
    const stdin = run(['exec', '--pool', 'javascript', '--id', 'cli-session-1', '--json'], 'n - 1');
    expect(JSON.parse(stdin.stdout)).toMatchObject({ status: 'Succeeded', result: { executionResult: 19 } });
    const failed = run(['exec', '--pool', 'javascript', '--id', 'cli-session-1', 'throw new Error("x")']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('x');
  });

  test('sessions ls/get/stop', () => {
    run(['exec', '--pool', 'javascript', '--id', 'cli-session-2', '1']);
    const ls = run(['sessions', 'ls', '--pool', 'javascript', '--json']);
    expect(JSON.parse(ls.stdout).value.map((s: { identifier: string }) => s.identifier)).toContain('cli-session-2');
    expect(run(['sessions', 'ls', '--pool', 'javascript']).stdout).toMatch(/IDENTIFIER\s+AGE\s+IDLE\s+EXPIRES IN/);
    expect(run(['sessions', 'stop', '--pool', 'javascript', '--id', 'cli-session-2']).code).toBe(0);
    const after = run(['sessions', 'get', '--pool', 'javascript', '--id', 'cli-session-2']);
    expect(after.code).toBe(1);
    expect(after.stderr).toMatch(/SessionWithIdentifierNotFound/);
  });

  test('files on a backend without files: a clear error, exit 1', () => {
    const r = run(['files', 'ls', '--pool', 'javascript', '--id', 'cli-session-3']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/SessionRequestNotSupported/);
  });

  test('credentials: a reader key cannot execute; no token → 401; the admin key works', () => {
    const key = run(['keys', 'create', '--data-dir', dataDir, '--name', 'ro', '--roles', 'reader', '--json']);
    const readerKey = (JSON.parse(key.stdout) as { key: string }).key;
    expect(run(['pool', 'list'], undefined, { SANDPOOL_TOKEN: readerKey }).code).toBe(0);
    const denied = run(['exec', '--pool', 'javascript', '--id', 'cli-session-4', '1'], undefined, { SANDPOOL_TOKEN: readerKey });
    expect(denied.stderr).toMatch(/403/);
    expect(run(['pool', 'list'], undefined, { SANDPOOL_TOKEN: '' }).stderr).toMatch(/401/);
    expect(run(['pool', 'list'], undefined, { SANDPOOL_TOKEN: ADMIN }).code).toBe(0);
  });

  test('serve refuses a non-loopback address without credentials', () => {
    const r = spawnSync(
      process.execPath,
      [cli, 'serve', '--listen', '0.0.0.0:0', '--data-dir', join(dataDir, 'open'), '--pools', 'none'],
      {
        encoding: 'utf8',
        env: { ...process.env, SANDPOOL_ADMIN_KEY: '' },
        timeout: 30_000,
      },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/refusing to listen on 0\.0\.0\.0 without authentication/);
  });

  test('SIGTERM drains and exits 0', async () => {
    const exited = new Promise<number | null>((resolve) => server.on('exit', (code) => resolve(code)));
    server.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(await readFile(join(dataDir, 'api-keys.json'), 'utf8')).not.toContain('spk_');
  });
});
