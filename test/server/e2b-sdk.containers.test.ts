/**
 * The real E2B SDKs (`e2b`, `@e2b/code-interpreter`, pinned in package.json) against `/e2b` of a
 * real server over real Python containers, configured the way users configure them: E2B_API_URL,
 * E2B_SANDBOX_URL and E2B_API_KEY. No network beyond loopback.
 */

import {
  AuthenticationError,
  CommandExitError,
  E2B,
  FileNotFoundError,
  InvalidArgumentError,
  Sandbox,
  SandboxError,
  SandboxNotFoundError,
  TimeoutError,
} from '@e2b/code-interpreter';
import { once } from 'node:events';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { inSandbox as inSandboxOf, startE2bServer } from './e2b-harness.js';
import { ADMIN_KEY, containerBackendAvailable, type Harness } from './helpers.js';

const containers = await containerBackendAvailable();
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47]);

let h: Harness;
let base: string;

beforeAll(async () => {
  if (!containers) return;
  ({ h, base } = await startE2bServer());
}, 180_000);

afterAll(async () => {
  await h?.close();
}, 60_000);

const inSandbox = (sandboxId: string, token: string, path: string, init: RequestInit & { port?: string } = {}) =>
  inSandboxOf(base, sandboxId, token, path, init);

/** Start an octet-stream upload that promises 1 MiB, send a little, and hang up. */
async function abandonUpload(sandboxId: string, token: string, encoding: string): Promise<void> {
  const { port, hostname } = new URL(base);
  const socket = connect(Number(port), hostname);
  await once(socket, 'connect');
  const head = [
    'POST /e2b/files?path=partial.bin HTTP/1.1',
    `Host: ${hostname}:${port}`,
    `E2b-Sandbox-Id: ${sandboxId}`,
    'E2b-Sandbox-Port: 49983',
    `X-Access-Token: ${token}`,
    'Content-Type: application/octet-stream',
    `Content-Encoding: ${encoding}`,
    'Content-Length: 1048576',
  ];
  const start = encoding === 'gzip' ? gzipSync(Buffer.alloc(4096)).subarray(0, 20) : Buffer.alloc(1000, 1);
  socket.write(`${head.join('\r\n')}\r\n\r\n`);
  socket.write(start);
  await new Promise((r) => setTimeout(r, 300));
  socket.destroy();
  await new Promise((r) => setTimeout(r, 500));
}

describe.skipIf(!containers)('the E2B SDKs against sandpool serve', () => {
  test('create → runCode with state → figure → files → commands → setTimeout → list → connect → kill', async () => {
    const sbx = await Sandbox.create({ metadata: { purpose: 'e2b-test' } });
    expect(sbx.sandboxId).toMatch(/^[a-z0-9]{20}$/);

    await sbx.runCode('x = 41');
    const stdout: string[] = [];
    const answer = await sbx.runCode('print("thinking"); x + 1', { onStdout: (m) => void stdout.push(m.line) });
    expect(answer.text).toBe('42');
    expect(answer.results[0]?.isMainResult).toBe(true);
    expect(answer.logs.stdout.join('')).toBe('thinking\n');
    expect(stdout.join('')).toBe('thinking\n');
    expect(answer.error).toBeUndefined();

    const figure = await sbx.runCode('import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.show()');
    const png = figure.results.find((r) => r.png !== undefined)?.png;
    expect(png).toBeDefined();
    expect(Buffer.from(png!, 'base64').subarray(0, 4)).toEqual(PNG_MAGIC);

    const failed = await sbx.runCode('def f():\n    return 1 / 0\nf()');
    expect(failed.error).toMatchObject({ name: 'ZeroDivisionError', value: 'division by zero' });
    expect(failed.error?.traceback).toContain('Traceback (most recent call last):');
    expect(failed.logs.stderr.join('')).not.toContain('Traceback');

    const js = await sbx.runCode('const y = 40; y + 2', { language: 'js' });
    expect(js.text).toBe('42');
    expect((await sbx.runCode('echo from bash', { language: 'bash' })).logs.stdout.join('')).toBe('from bash\n');
    expect((await sbx.runCode('x', { context: { id: 'python', language: 'python', cwd: '/home/user' } })).text).toBe('41');

    // Files: E2B's /home/user is the session's files area, shared with the kernel.
    const written = await sbx.files.write('notes/hello.txt', 'hi from e2b');
    expect(written).toMatchObject({ name: 'hello.txt', path: '/home/user/notes/hello.txt', type: 'file' });
    expect(await sbx.files.read('/home/user/notes/hello.txt')).toBe('hi from e2b');
    expect((await sbx.runCode('open("notes/hello.txt").read()')).text).toBe('hi from e2b');
    const listing = await sbx.files.list('/home/user/notes');
    expect(listing.map((e) => [e.name, e.type, e.size])).toEqual([['hello.txt', 'file', 11]]);
    expect(await sbx.files.makeDir('/home/user/made/deep')).toBe(true);
    expect(await sbx.files.makeDir('made/deep')).toBe(false);
    expect(await sbx.files.exists('made')).toBe(true);
    const moved = await sbx.files.rename('notes/hello.txt', 'notes/moved.txt');
    expect(moved.path).toBe('/home/user/notes/moved.txt');
    await sbx.files.remove('notes/moved.txt');
    await expect(sbx.files.read('notes/moved.txt')).rejects.toBeInstanceOf(FileNotFoundError);
    await expect(sbx.files.read('/etc/passwd')).rejects.toBeInstanceOf(InvalidArgumentError);
    // Streamed and gzip-encoded uploads (octet-stream bodies).
    const streamed = new Blob(['streamed ', 'bytes']).stream();
    await sbx.files.write('streamed.txt', streamed);
    await sbx.files.write('zipped.txt', 'gzip on the wire', { gzip: true });
    expect(await sbx.files.read('streamed.txt')).toBe('streamed bytes');
    expect(await sbx.files.read('zipped.txt')).toBe('gzip on the wire');
    await sbx.files.remove('streamed.txt');
    await sbx.files.remove('zipped.txt');

    // Commands run in the same session: they see the kernel's files and the variables they are given.
    const chunks: string[] = [];
    const run = await sbx.commands.run('echo out; echo err >&2; ls /home/user; pwd; echo "$GREETING"', {
      envs: { GREETING: 'hello' },
      onStdout: (data) => void chunks.push(data),
    });
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toBe('out\nmade\nnotes\n/mnt/data\nhello\n');
    expect(run.stderr).toBe('err\n');
    expect(chunks.join('')).toBe(run.stdout);
    expect((await sbx.commands.run('pwd', { cwd: '/home/user/made' })).stdout).toBe('/mnt/data/made\n');
    const exit = await sbx.commands.run('exit 3').catch((e: unknown) => e);
    expect(exit).toBeInstanceOf(CommandExitError);
    expect((exit as CommandExitError).exitCode).toBe(3);
    await expect(sbx.commands.run('sleep 20', { timeoutMs: 1_000 })).rejects.toBeInstanceOf(TimeoutError);
    expect((await sbx.runCode('x')).text).toBe('41'); // the session outlives the killed command

    const before = (await sbx.getInfo()).endAt.getTime();
    await sbx.setTimeout(1_200_000);
    const info = await sbx.getInfo();
    expect(info.endAt.getTime()).toBeGreaterThan(before + 500_000);
    expect(info).toMatchObject({ templateId: 'code-interpreter-v1', metadata: { purpose: 'e2b-test' }, state: 'running' });

    const listed = await Sandbox.list({ query: { metadata: { purpose: 'e2b-test' } } }).nextItems();
    expect(listed.map((s) => s.sandboxId)).toContain(sbx.sandboxId);

    // A second client, configured in code rather than by environment, reaches the same sandbox.
    const other = new E2B({ apiKey: ADMIN_KEY, apiUrl: base, sandboxUrl: base });
    const again = await other.Sandbox.connect(sbx.sandboxId);
    expect((await again.runCode('x')).text).toBe('41');
    expect(await again.files.exists('made/deep')).toBe(true);

    expect(await sbx.kill()).toBe(true);
    expect(await again.isRunning()).toBe(false);
    expect(await Sandbox.kill(sbx.sandboxId)).toBe(false);
    await expect(Sandbox.getInfo(sbx.sandboxId)).rejects.toBeInstanceOf(SandboxNotFoundError);
    await expect(Sandbox.connect(sbx.sandboxId)).rejects.toBeInstanceOf(SandboxNotFoundError);
    await expect(again.runCode('x')).rejects.toThrow(/sandbox/i);
    const after = await Sandbox.list().nextItems();
    expect(after.map((s) => s.sandboxId)).not.toContain(sbx.sandboxId);
  }, 180_000);

  test('a wrong API key is an AuthenticationError; a wrong access token is refused', async () => {
    await expect(Sandbox.create({ apiKey: 'not-a-sandpool-key' })).rejects.toBeInstanceOf(AuthenticationError);
    await expect(Sandbox.list({ apiKey: 'not-a-sandpool-key' }).nextItems()).rejects.toBeInstanceOf(AuthenticationError);
    const sbx = await Sandbox.create();
    try {
      const wrong = await inSandbox(sbx.sandboxId, 'not-the-token', '/files?path=a.txt');
      expect(wrong.status).toBe(401);
      const rpc = await inSandbox(sbx.sandboxId, 'not-the-token', '/filesystem.Filesystem/ListDir', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ path: '/home/user' }),
      });
      expect(rpc.status).toBe(401);
      expect(await rpc.json()).toMatchObject({ code: 'unauthenticated' });
      const exec = await inSandbox(sbx.sandboxId, '', '/execute', { method: 'POST', port: '49999', body: '{"code":"1"}' });
      expect(exec.status).toBe(401);
    } finally {
      await sbx.kill();
    }
    // The token never reaches the logs.
    expect(JSON.stringify(h.logs)).not.toContain(sbx['envdAccessToken'] as string);
  }, 120_000);

  test('malformed uploads are refused with 4xx, never a server error', async () => {
    const sbx = await Sandbox.create();
    const token = sbx['envdAccessToken'] as string;
    try {
      const gzip = await inSandbox(sbx.sandboxId, token, '/files?path=bad.txt', {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'content-encoding': 'gzip' },
        body: 'this is not gzip',
      });
      expect(gzip.status).toBe(400);
      expect(await gzip.json()).toMatchObject({ code: 400, message: expect.stringMatching(/gzip/) });
      const form = await inSandbox(sbx.sandboxId, token, '/files?path=bad.txt', { method: 'POST', body: 'plain text' });
      expect(form.status).toBe(415);
      const noPath = await inSandbox(sbx.sandboxId, token, '/files', {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: 'x',
      });
      expect(noPath.status).toBe(400);
      // A client that leaves mid-body: the upload is abandoned and the session stays usable.
      for (const encoding of ['identity', 'gzip']) {
        await abandonUpload(sbx.sandboxId, token, encoding);
        expect(await sbx.files.list('/home/user')).toEqual([]);
      }
      expect(await sbx.files.exists('bad.txt')).toBe(false);
      await sbx.files.write('good.txt', 'ok');
      expect(await sbx.files.read('good.txt')).toBe('ok');
    } finally {
      await sbx.kill();
    }
    expect(h.logs.filter((r) => r['level'] === 'error')).toEqual([]);
  }, 120_000);

  test('an unknown template is the SDK error with status 404', async () => {
    const error = await Sandbox.create('no-such-template').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SandboxError);
    expect((error as SandboxError).statusCode).toBe(404);
    expect(String((error as Error).message)).toMatch(/template "no-such-template" not found/);
  });

  test('two sandboxes are isolated from each other', async () => {
    const [a, b] = await Promise.all([Sandbox.create(), Sandbox.create()]);
    try {
      await a.runCode('secret = "only in a"');
      await a.files.write('private.txt', 'a');
      const probe = await b.runCode('secret');
      expect(probe.error?.name).toBe('NameError');
      expect(await b.files.exists('private.txt')).toBe(false);
      expect((await b.commands.run('ls -A /home/user')).stdout).toBe('');
      // b's token does not open a.
      const crossed = await inSandbox(a.sandboxId, b['envdAccessToken'] as string, '/files?path=private.txt');
      expect(crossed.status).toBe(401);
    } finally {
      await Promise.all([a.kill(), b.kill()]);
    }
  }, 120_000);

  test('unsupported features answer the SDK errors for them', async () => {
    const sbx = await Sandbox.create();
    try {
      await expect(sbx.createSnapshot()).rejects.toMatchObject({ statusCode: 501 });
      await expect(sbx.files.watchDir('/home/user', () => {})).rejects.toThrow(/watching directories is not supported/);
      await expect(sbx.pty.create({ cols: 80, rows: 24, onData: () => {} })).rejects.toThrow(/PTY sessions is not supported/);
      await expect(sbx.createCodeContext()).rejects.toBeInstanceOf(SandboxError);
      await expect(Sandbox.create({ network: { denyOut: ['0.0.0.0/0'] } })).rejects.toMatchObject({ statusCode: 501 });
      expect((await sbx.listCodeContexts()).map((c) => c.id)).toEqual(['python', 'javascript']);
    } finally {
      await sbx.kill();
    }
  }, 120_000);

  test('a sandbox ends at its timeout', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 2_000 });
    expect(await sbx.isRunning()).toBe(true);
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await sbx.isRunning()).toBe(false);
    await expect(sbx.getInfo()).rejects.toBeInstanceOf(SandboxNotFoundError);
  }, 60_000);

  test('audit records and metrics cover the E2B routes', async () => {
    const audit = h.logs.filter((r) => r['type'] === 'audit' && String(r['operation']).startsWith('e2b.'));
    expect(audit.some((r) => r['operation'] === 'e2b.create' && r['status'] === 201 && r['principal'] === 'admin')).toBe(true);
    expect(audit.some((r) => r['operation'] === 'e2b.rpc.process.Start' && r['pool'] === 'python')).toBe(true);
    expect(audit.some((r) => r['operation'] === 'e2b.create' && r['status'] === 401)).toBe(true);
    const metrics = await (await h.request('/metrics')).text();
    expect(metrics).toMatch(/sandpool_http_requests_total\{operation="e2b.interpreter.execute",status="200"\} \d+/);
  });
});
