/**
 * The E2B API without containers: its parsers (tracebacks, paths, Connect envelopes) and the real
 * SDKs against a server whose template maps to a QuickJS pool, plus the raw wire answers the SDKs
 * turn into their error classes.
 */

import { RateLimitError, Sandbox, SandboxError } from '@e2b/code-interpreter';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import type { Language } from '../../src/backend.js';
import { parseE2bTemplates } from '../../src/cli/commands/serve.js';
import { envelope } from '../../src/server/e2b/connect-rpc.js';
import { OutputRelay } from '../../src/server/e2b/output-relay.js';
import type { ExecutionResult } from '../../src/session-types.js';
import { splitError, textOf } from '../../src/server/e2b/execution-output.js';
import { toDataPath, toE2bPath, toSandboxDir } from '../../src/server/e2b/paths.js';
import { ADMIN_KEY, jsPool, startServer, type Harness } from './helpers.js';

describe('tracebacks become E2B errors', () => {
  const split = (stderr: string, language: Language = 'python') => splitError(stderr, language);

  test('a Python exception: name, value, traceback; earlier stderr stays', () => {
    const tb =
      'Traceback (most recent call last):\n  File "<cell-3>", line 1, in <module>\n    1/0\nZeroDivisionError: division by zero\n';
    const out = split(`warning: careful\n${tb}`);
    expect(out.error).toEqual({ name: 'ZeroDivisionError', value: 'division by zero', traceback: tb.trimEnd() });
    expect(out.stderr).toBe('warning: careful\n');
  });

  test('chained exceptions keep the whole chain; module-qualified names lose the module', () => {
    const first = 'Traceback (most recent call last):\n  File "<cell-1>", line 2, in <module>\nKeyError: \'a\'';
    const second =
      'Traceback (most recent call last):\n  File "<cell-1>", line 4, in <module>\nnumpy.linalg.LinAlgError: Singular matrix\nsecond line';
    const out = split(`${first}\n\nDuring handling of the above exception, another exception occurred:\n\n${second}\n`);
    expect(out.error.name).toBe('LinAlgError');
    expect(out.error.value).toBe('Singular matrix\nsecond line');
    expect(out.error.traceback.startsWith(first)).toBe(true);
    expect(out.stderr).toBe('');
  });

  test('a SyntaxError has no header; an exception without a message has an empty value', () => {
    const syntax = split('  File "<cell-2>", line 1\n    x = \n        ^\nSyntaxError: invalid syntax\n');
    expect(syntax.error).toMatchObject({ name: 'SyntaxError', value: 'invalid syntax' });
    expect(split('Traceback (most recent call last):\n  File "<cell-1>", line 1\nKeyboardInterrupt\n').error).toMatchObject({
      name: 'KeyboardInterrupt',
      value: '',
    });
  });

  test('JavaScript errors and syntax errors', () => {
    expect(split('Error: boom\n    at <cell-1>:1:7\n', 'javascript').error).toEqual({
      name: 'Error',
      value: 'boom',
      traceback: 'Error: boom\n    at <cell-1>:1:7',
    });
    const syntax = split("log line\n<cell-4>:1\nlet = 1\n    ^\n\nSyntaxError: Unexpected token '='\n", 'javascript');
    expect(syntax.error.name).toBe('SyntaxError');
    expect(syntax.error.traceback.startsWith('<cell-4>:1')).toBe(true);
    expect(syntax.stderr).toBe('log line\n');
  });

  test('anything else falls back to the last line, and stderr is kept whole', () => {
    const out = split('something odd happened\n', 'python');
    expect(out).toEqual({
      stderr: 'something odd happened\n',
      error: { name: 'Error', value: 'something odd happened', traceback: 'something odd happened' },
    });
  });

  test('values read as the language prints them', () => {
    expect(textOf(true, 'python')).toBe('True');
    expect(textOf(false, 'javascript')).toBe('false');
    expect(textOf(42, 'python')).toBe('42');
    expect(textOf('', 'python')).toBeUndefined();
    expect(textOf(null, 'python')).toBe('nan');
  });
});

describe('live output relay', () => {
  const result = (stdout: string, stderr: string, status: 'Succeeded' | 'Failed'): ExecutionResult => ({
    id: 'e',
    status,
    result: '',
    stdout,
    stderr,
    executionTimeInMilliseconds: 1,
    truncated: { stdout: false, stderr: false },
    images: [],
    sessionState: 'kept',
  });
  const tb = 'Traceback (most recent call last):\n  File "<cell-1>", line 3, in <module>\nValueError: late\n';

  test('stdout goes out at once; the held stderr piece loses its traceback when the cell fails', () => {
    const lines: Record<string, unknown>[] = [];
    const relay = new OutputRelay({ write: (l) => void lines.push(l as Record<string, unknown>) });
    relay.onOutput({ type: 'stdout', text: 'a\n' });
    relay.onOutput({ type: 'stderr', text: 'warning\n' });
    relay.onOutput({ type: 'stdout', text: 'b\n' }); // flushes the held warning first
    relay.onOutput({ type: 'stderr', text: `note\n${tb}` });
    expect(lines.map((l) => [l['type'], l['text']])).toEqual([
      ['stdout', 'a\n'],
      ['stderr', 'warning\n'],
      ['stdout', 'b\n'],
    ]);
    relay.finish(result('a\nb\n', `warning\nnote\n${tb}`, 'Failed'), 'python');
    expect(lines.slice(3).map((l) => [l['type'], l['text'] ?? l['name']])).toEqual([
      ['stderr', 'note\n'],
      ['error', 'ValueError'],
    ]);
  });

  test('a held piece goes out by itself after a moment', async () => {
    const lines: Record<string, unknown>[] = [];
    const relay = new OutputRelay({ write: (l) => void lines.push(l as Record<string, unknown>) });
    relay.onOutput({ type: 'stderr', text: 'slow warning\n' });
    expect(lines).toEqual([]);
    await new Promise((r) => setTimeout(r, 400));
    expect(lines.map((l) => l['text'])).toEqual(['slow warning\n']);
    relay.finish(result('', 'slow warning\n', 'Succeeded'), 'python');
    expect(lines).toHaveLength(1);
  });
});

describe('E2B paths map into the files area', () => {
  test.each([
    ['a.txt', 'a.txt'],
    ['/home/user/a.txt', 'a.txt'],
    ['/home/user', ''],
    ['/home/user/', ''],
    ['.', ''],
    ['~/x/y', 'x/y'],
    ['/mnt/data/x', 'x'],
    ['dir/./b/../c', 'dir/c'],
  ])('%s → %s', (e2b, data) => {
    expect(toDataPath(e2b)).toBe(data);
  });

  test.each(['/etc/passwd', '../x', '/home/user/../../etc', '/home/userx', 'a\0b'])('%s is refused', (path) => {
    expect(() => toDataPath(path)).toThrow(/outside|NUL/);
  });

  test('reported paths and command directories', () => {
    expect(toE2bPath('')).toBe('/home/user');
    expect(toE2bPath('a/b')).toBe('/home/user/a/b');
    expect(toSandboxDir('/home/user/x')).toBe('/mnt/data/x');
    expect(toSandboxDir('sub')).toBe('/mnt/data/sub');
    expect(toSandboxDir('/tmp')).toBe('/tmp');
  });
});

let h: Harness;
let base: string;

beforeAll(async () => {
  const tiny = jsPool('tiny', { readySessionInstances: 0, maxConcurrentSessions: 1 });
  const brief = jsPool('brief', { cooldownPeriodInSeconds: 0.5 });
  h = await startServer({ pools: [jsPool('js'), tiny, brief], withDefaultPool: false, e2b: { templates: { quick: 'js' } } });
  base = `${h.url}/e2b`;
});
afterAll(async () => {
  await h.close();
});

const opts = () => ({ apiKey: ADMIN_KEY, apiUrl: base, sandboxUrl: base });

describe('the SDKs over a QuickJS pool', () => {
  test('runCode keeps state; files and commands answer the unsupported-feature errors', async () => {
    const sbx = await Sandbox.create('quick', { ...opts(), envs: { GREETING: 'hello' } });
    try {
      await sbx.runCode('var x = 41');
      expect((await sbx.runCode('x + 1')).text).toBe('42');
      expect((await sbx.runCode('env.GREETING + " " + env.ONCE', { envs: { ONCE: 'now' } })).text).toBe('hello now');
      const failed = await sbx.runCode('throw new TypeError("nope")');
      expect(failed.error).toMatchObject({ name: 'TypeError', value: 'nope' });
      await expect(sbx.runCode('print(1)', { language: 'python' })).rejects.toBeInstanceOf(SandboxError);
      await expect(sbx.files.list('/home/user')).rejects.toThrow(/files on the quickjs backend is not supported/);
      await expect(sbx.files.write('a.txt', 'x')).rejects.toThrow(/not supported/);
      await expect(sbx.commands.run('echo hi')).rejects.toThrow(/commands on the quickjs backend is not supported/);
      // Isolates cannot pause: the pool's UnsupportedError is E2B's 501.
      await expect(sbx.pause()).rejects.toMatchObject({ statusCode: 501 });
      await expect(Sandbox.create('quick', { ...opts(), lifecycle: { onTimeout: 'pause' } })).rejects.toMatchObject({
        statusCode: 501,
      });
      expect(await sbx.isRunning()).toBe(true);
    } finally {
      await sbx.kill();
    }
  });

  test('list filters by metadata and pages with x-next-token', async () => {
    const batch = `b${Date.now()}`;
    const made = await Promise.all([1, 2, 3].map(() => Sandbox.create('quick', { ...opts(), metadata: { batch } })));
    try {
      const pages = Sandbox.list({ ...opts(), query: { metadata: { batch } }, limit: 2 });
      const first = await pages.nextItems();
      expect(first).toHaveLength(2);
      expect(pages.hasNext).toBe(true);
      const second = await pages.nextItems();
      expect(pages.hasNext).toBe(false);
      expect([...first, ...second].map((s) => s.sandboxId).sort()).toEqual(made.map((s) => s.sandboxId).sort());
      expect(first[0]).toMatchObject({ templateId: 'quick', state: 'running', metadata: { batch } });
    } finally {
      await Promise.all(made.map((s) => s.kill()));
    }
  });

  test('a full pool is a RateLimitError, with Retry-After for the SDK to retry on', async () => {
    // The pool is full until the one sandbox's timeout ends it, so Retry-After says when that is.
    const first = await Sandbox.create('tiny', { ...opts(), timeoutMs: 20_000 });
    try {
      await expect(Sandbox.create('tiny', { ...opts(), retries: 0 })).rejects.toBeInstanceOf(RateLimitError);
      const raw = await fetch(`${base}/v2/sandboxes`, {
        method: 'POST',
        headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json' },
        body: '{"templateID":"tiny"}',
      });
      expect(raw.status).toBe(429);
      const retryAfter = Number(raw.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(20);
    } finally {
      await first.kill();
    }
  });

  test('network access is the pool setting: asking for something else is refused', async () => {
    await expect(Sandbox.create('quick', { ...opts(), allowInternetAccess: true })).rejects.toMatchObject({ statusCode: 400 });
    const same = await Sandbox.create('quick', { ...opts(), allowInternetAccess: false });
    expect(await same.kill()).toBe(true);
  });

  test('the E2B timeout, not the pool cooldown, decides when an idle sandbox ends', async () => {
    const sbx = await Sandbox.create('brief', { ...opts(), timeoutMs: 3_000 });
    await sbx.runCode('var kept = 7');
    // Idle for four cooldowns: the deadline holds the session.
    await new Promise((r) => setTimeout(r, 2_000));
    expect((await sbx.runCode('kept')).text).toBe('7');
    await sbx.setTimeout(1_000);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await sbx.isRunning()).toBe(false);
    expect(
      h.server
        .pools()
        .find((p) => p.name === 'brief')!
        .stats().allocated,
    ).toBe(0);
  });

  test('a timeout past the server maximum is refused', async () => {
    const error = await Sandbox.create('quick', { ...opts(), timeoutMs: 90_000_000 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ statusCode: 400 });
  });
});

describe('the wire', () => {
  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${base}${path}`, {
      ...init,
      headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json', ...init.headers },
    });

  test('control-plane errors are E2B error objects', async () => {
    const bad = await api('/v2/sandboxes', { method: 'POST', body: '{"templateID": 5}' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 400, message: expect.stringContaining('templateID') });
    const unknown = await api('/v2/nothing-here');
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ code: 404 });
    // Template names are looked up as own keys: a name on Object.prototype is just unknown.
    for (const templateID of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const prototypeName = await api('/v2/sandboxes', { method: 'POST', body: JSON.stringify({ templateID }) });
      expect(prototypeName.status, templateID).toBe(404);
      expect(await prototypeName.json()).toMatchObject({ code: 404, message: `template "${templateID}" not found` });
    }
    const noKey = await fetch(`${base}/v2/sandboxes`);
    expect(noKey.status).toBe(401);
    const notJson = await api('/v2/sandboxes', { method: 'POST', body: '{' });
    expect(notJson.status).toBe(400);
    expect(h.logs.some((r) => r['level'] === 'error')).toBe(false);
  });

  test('in-sandbox requests to an unknown sandbox or port answer 502, as E2B does', async () => {
    const created = (await (await api('/v2/sandboxes', { method: 'POST', body: '{"templateID":"quick"}' })).json()) as {
      sandboxID: string;
      envdAccessToken: string;
    };
    const headers = (id: string, port: string) => ({
      'e2b-sandbox-id': id,
      'e2b-sandbox-port': port,
      'x-access-token': created.envdAccessToken,
    });
    expect((await fetch(`${base}/health`, { headers: headers('a'.repeat(20), '49983') })).status).toBe(502);
    expect((await fetch(`${base}/health`, { headers: headers('../../etc', '49983') })).status).toBe(502);
    expect((await fetch(`${base}/health`, { headers: headers(created.sandboxID, '8080') })).status).toBe(502);
    expect((await fetch(`${base}/health`, { headers: headers(created.sandboxID, '49983') })).status).toBe(204);

    // A streaming call that cannot run ends with a Connect error in the end-stream envelope.
    const start = await fetch(`${base}/process.Process/Start`, {
      method: 'POST',
      headers: { ...headers(created.sandboxID, '49983'), 'content-type': 'application/connect+json' },
      body: envelope(0, { process: { cmd: '/bin/bash', args: ['-c', 'echo'] } }),
    });
    expect(start.status).toBe(200);
    const bytes = Buffer.from(await start.arrayBuffer());
    expect(bytes[0]).toBe(2);
    expect(JSON.parse(bytes.subarray(5).toString())).toEqual({
      error: { code: 'unimplemented', message: expect.stringContaining('commands on the quickjs backend') },
    });
    // A unary call with a bad message: Connect's JSON error.
    const stat = await fetch(`${base}/filesystem.Filesystem/Stat`, {
      method: 'POST',
      headers: { ...headers(created.sandboxID, '49983'), 'content-type': 'application/json' },
      body: '[1]',
    });
    expect(stat.status).toBe(400);
    expect(await stat.json()).toMatchObject({ code: 'invalid_argument' });
    expect((await api(`/sandboxes/${created.sandboxID}`, { method: 'DELETE' })).status).toBe(204);
  });

  test('the E2B API can be turned off', async () => {
    const off = await startServer({ pools: [jsPool('js')], withDefaultPool: false, e2b: false });
    try {
      const res = await fetch(`${off.url}/e2b/v2/sandboxes`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ error: { code: 'NotFound' } });
    } finally {
      await off.close();
    }
  });
});

describe('sandpool serve --e2b-template', () => {
  test('TEMPLATE=POOL pairs', () => {
    expect(parseE2bTemplates(['code-interpreter-v1=py', 'quick=js'])).toEqual({ 'code-interpreter-v1': 'py', quick: 'js' });
    expect(() => parseE2bTemplates(['nope'])).toThrow(/TEMPLATE=POOL/);
  });
});
