/**
 * Client replays that need Python, files or a shell: real container sessions (podman) behind the
 * real server. Each block sends exactly what one client of §6 sends and asserts what it reads.
 */

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { SessionPool } from '../../src/index.js';
import {
  ADMIN_KEY,
  containerBackendAvailable,
  json,
  newIdentifier,
  requestsMultipart,
  startServer,
  type Harness,
} from './helpers.js';

const available = await containerBackendAvailable();
const bearer = { authorization: `Bearer ${ADMIN_KEY}` };
let h: Harness;
let py: string;
let sh: string;

const post = (url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
  fetch(url, {
    method: 'POST',
    headers: { ...bearer, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
const gen1 = (code: string): unknown => ({ properties: { codeInputType: 'inline', executionType: 'synchronous', code } });
const upload = (url: string, filename: string, data: string): Promise<Response> => {
  const { body, contentType } = requestsMultipart(filename, data);
  return fetch(url, { method: 'POST', headers: { ...bearer, 'content-type': contentType }, body });
};

describe.skipIf(!available)('clients against Python and Shell container sessions', () => {
  beforeAll(async () => {
    const limits = { maxFileSizeBytes: 256 * 1024, memoryMb: 512 };
    h = await startServer({
      withDefaultPool: false,
      pools: [
        new SessionPool({
          name: 'py',
          backend: new ContainerBackend(),
          containerType: 'PythonLTS',
          readySessionInstances: 1,
          maxConcurrentSessions: 12,
          limits,
        }),
        new SessionPool({
          name: 'sh',
          backend: new ContainerBackend(),
          containerType: 'Shell',
          readySessionInstances: 1,
          maxConcurrentSessions: 4,
          limits,
        }),
      ],
    });
    py = `${h.url}/pools/py`;
    sh = `${h.url}/pools/sh`;
  }, 120_000);
  afterAll(async () => {
    await h?.close();
    // Leak check: closing the server closed the pools, which removed every container they made.
    const { execFileSync } = await import('node:child_process');
    const left = execFileSync(
      'podman',
      ['ps', '-a', '--filter', `label=sandpool.owner-pid=${process.pid}`, '--format', '{{.Names}}'],
      { encoding: 'utf8' },
    );
    expect(left.trim()).toBe('');
  }, 120_000);

  test('LangChain SessionsPythonREPLTool: execute, upload, list, download, close', async () => {
    const id = newIdentifier();
    const q = `identifier=${encodeURIComponent(id)}&api-version=2024-02-02-preview`;
    const ex = (await json(await post(`${py}/code/execute?${q}`, gen1('print("hello world")\n1 + 1'))))['properties'];
    expect(ex).toMatchObject({ result: 2, stdout: 'hello world\n', stderr: '' });
    const up = await json(await upload(`${py}/files/upload?${q}`, 'test1.txt', 'hello from test1'));
    expect(up['value'][0].properties).toMatchObject({ filename: 'test1.txt', size: 16 });
    await upload(`${py}/files/upload?${q}`, 'test2.txt', 'second');
    const list = await json(await fetch(`${py}/files?${q}`, { headers: bearer }));
    expect(
      list['value']
        .map((v: { properties: { filename: string; size: number } }) => [v.properties.filename, v.properties.size])
        .sort(),
    ).toEqual([
      ['test1.txt', 16],
      ['test2.txt', 6],
    ]);
    const content = await fetch(`${py}/files/content/${encodeURIComponent('test1.txt')}?${q}`, { headers: bearer });
    expect(await content.text()).toBe('hello from test1');
    const read = (await json(await post(`${py}/code/execute?${q}`, gen1('open("/mnt/data/test2.txt").read()'))))['properties'];
    expect(read.result).toBe('second');
    const del = await fetch(`${py}/session?identifier=${encodeURIComponent(id)}&api-version=2025-10-02-preview`, {
      method: 'DELETE',
      headers: bearer,
    });
    expect(del.status).toBe(204);
  }, 120_000);

  test('matplotlib figure → result {type:"image", format:"png", base64_data}', async () => {
    const id = newIdentifier();
    const code = 'import matplotlib\nmatplotlib.use("Agg")\nimport matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()';
    const p = (await json(await post(`${py}/code/execute?identifier=${id}&api-version=2024-02-02-preview`, gen1(code))))[
      'properties'
    ];
    expect(p.status).toBe('Success');
    expect(p.result).toMatchObject({ type: 'image', format: 'png' });
    expect(Buffer.from(p.result.base64_data, 'base64').subarray(1, 4).toString()).toBe('PNG');
  }, 120_000);

  test('llama-index / SK Python: /mnt/data/ filenames, relative filenames back, all keys present', async () => {
    const id = newIdentifier();
    const q = `identifier=${id}&api-version=2024-02-02-preview`;
    const up = await json(await upload(`${py}/files/upload?${q}`, '/mnt/data/data.csv', 'a,b\n1,2\n'));
    for (const entry of up['value']) expect(entry.properties).toMatchObject({ filename: 'data.csv', size: 8 });
    const list = await json(await fetch(`${py}/files?${q}`, { headers: bearer }));
    expect(
      list['value'].some(
        (v: { properties: { filename: string } }) => `/mnt/data/${v.properties.filename}` === '/mnt/data/data.csv',
      ),
    ).toBe(true);
    const p = (
      await json(
        await post(`${py}/code/execute?${q}`, {
          properties: {
            codeInputType: 'inline',
            executionType: 'synchronous',
            code: 'import csv\nlen(open("/mnt/data/data.csv").read())\n',
            timeoutInSeconds: 100,
          },
        }),
      )
    )['properties'];
    expect(p).toMatchObject({ status: 'Success', result: 8, stdout: '', stderr: '' });
  }, 120_000);

  test('Semantic Kernel .NET: current (files, executions) and old (python/execute, python/downloadFile, //files)', async () => {
    const id = newIdentifier();
    const q = `identifier=${id}&api-version=2024-10-02-preview`;
    const meta = await json(await upload(`${py}/files?${q}`, 'report.txt', 'sk data'));
    expect(meta).toMatchObject({ name: 'report.txt', sizeInBytes: 7, type: 'file' });
    expect(Number.isNaN(Date.parse(meta['lastModifiedAt']))).toBe(false);
    const got = await fetch(`${py}/files/${encodeURIComponent('report.txt')}/content?${q}`, { headers: bearer });
    expect(await got.text()).toBe('sk data');
    const list = await json(await fetch(`${py}/files?${q}`, { headers: bearer }));
    expect(list['value'][0]).toMatchObject({ name: 'report.txt', type: 'file', sizeInBytes: 7 });
    const r = await json(
      await post(
        `${py}/executions?${q}`,
        { codeInputType: 'Inline', executionType: 'Synchronous', timeoutInSeconds: 100, code: '6 * 7' },
        { 'user-agent': 'Semantic-Kernel/1.60.0 (Language=dotnet)' },
      ),
    );
    expect(r).toMatchObject({ status: 'Succeeded', result: { executionResult: '42' } });

    const old = await json(
      await post(`${py}/python/execute?api-version=2024-02-02-preview`, {
        properties: {
          identifier: id,
          codeInputType: 'inline',
          executionType: 'synchronous',
          timeoutInSeconds: 100,
          pythonCode: 'print(1)',
        },
      }),
    );
    expect(old).toMatchObject({ status: 'Success', result: '', stdout: '1\n', stderr: '' });
    const dl = await fetch(`${py}/python/downloadFile?identifier=${id}&filename=report.txt&api-version=2024-02-02-preview`, {
      headers: bearer,
    });
    expect(await dl.text()).toBe('sk data');
    const slashes = await json(await fetch(`${py}//files?identifier=${id}&api-version=2024-02-02-preview`, { headers: bearer }));
    expect(slashes['value'][0].properties).toMatchObject({ filename: 'report.txt', size: 7 });
  }, 120_000);

  test('AutoGen: package discovery parses the multi-line repr; os.chdir setup cell; Failure on exceptions', async () => {
    const id = newIdentifier();
    const url = `${py}/code/execute?api-version=2024-02-02-preview&identifier=${id}`;
    const pkgs = (await json(await post(url, gen1('import pkg_resources\n[d.project_name for d in pkg_resources.working_set]'))))[
      'properties'
    ];
    expect(pkgs.status).toContain('Success');
    const names = String(pkgs.result)
      .replace(/^\[|\]$/g, '')
      .split(',\n')
      .map((s) => s.trim().replace(/^'|'$/g, ''));
    expect(names).toContain('numpy');
    expect(names.length).toBeGreaterThan(5);
    expect((await json(await post(url, gen1("import os\nos.chdir('/mnt/data')"))))['properties'].status).toContain('Success');
    const failed = (await json(await post(url, gen1('raise ValueError("bad")'))))['properties'];
    expect(failed.status).toContain('Failure');
    expect(failed.stderr).toContain('ValueError: bad');
  }, 120_000);

  test('Azure CLI: files with path, metadata, content, delete (204), list with path', async () => {
    const id = newIdentifier();
    const q = `identifier=${id}&api-version=2025-02-02-preview`;
    const up = await json(await upload(`${py}/files?path=sub&${q}`, 'x.json', '{"a":1}'));
    expect(up).toMatchObject({ name: 'x.json', sizeInBytes: 7 });
    const meta = await json(await fetch(`${py}/files/x.json?path=sub&${q}`, { headers: bearer }));
    expect(meta).toMatchObject({ name: 'x.json', sizeInBytes: 7 });
    expect(await (await fetch(`${py}/files/x.json/content?path=sub&${q}`, { headers: bearer })).text()).toBe('{"a":1}');
    const listed = await json(await fetch(`${py}/files?path=sub&${q}`, { headers: bearer }));
    expect(listed['value'].map((f: { name: string }) => f.name)).toEqual(['x.json']);
    const recursive = await json(await fetch(`${py}/files?recursive=true&${q}`, { headers: bearer }));
    expect(recursive['value'].find((f: { name: string }) => f.name === 'x.json')).toMatchObject({ directory: 'sub' });
    expect((await fetch(`${py}/files/x.json?path=sub&${q}`, { method: 'DELETE', headers: bearer })).status).toBe(204);
    const missing = await fetch(`${py}/files/x.json?path=sub&${q}`, { headers: bearer });
    expect(missing.status).toBe(404);
    // The 2024-08-02-preview spelling of delete answers 200 with a message.
    await upload(`${py}/files/upload?${q}`, 'old.txt', 'o');
    const legacy = await fetch(`${py}/files/old.txt?identifier=${id}&api-version=2024-08-02-preview`, {
      method: 'DELETE',
      headers: bearer,
    });
    expect(await json(legacy)).toEqual({ message: 'file deleted successfully' });
  }, 120_000);

  test('files: path traversal refused (400), over the size cap 413, nothing written', async () => {
    const id = newIdentifier();
    const q = `identifier=${id}&api-version=2025-02-02-preview`;
    for (const name of ['../escape.txt', '/etc/passwd', 'a/../../b']) {
      const r = await upload(`${py}/files?${q}`, name, 'x');
      expect(r.status, name).toBe(400);
    }
    expect((await fetch(`${py}/files/..%2F..%2Fetc%2Fpasswd/content?${q}`, { headers: bearer })).status).toBe(400);
    const big = await upload(`${py}/files?${q}`, 'big.bin', 'x'.repeat(300 * 1024));
    expect(big.status).toBe(413);
    expect((await json(big))['error'].code).toBe('RequestEntityTooLarge');
    const list = await json(await fetch(`${py}/files?${q}`, { headers: bearer }));
    expect(list['value']).toEqual([]);
  }, 120_000);

  test('malformed multipart: bad framing, no boundary, no file part → 400/415, nothing written', async () => {
    const id = newIdentifier();
    const q = `identifier=${id}&api-version=2025-02-02-preview`;
    const send = (contentType: string, body: string): Promise<Response> =>
      fetch(`${py}/files?${q}`, { method: 'POST', headers: { ...bearer, 'content-type': contentType }, body });
    const truncated = await send(
      'multipart/form-data; boundary=XYZ',
      '--XYZ\r\nContent-Disposition: form-data; name="file"; filename="t.txt"\r\n\r\nunterminated',
    );
    expect(truncated.status).toBe(400);
    expect((await json(truncated))['error'].code).toBe('InvalidRequestContent');
    const noBoundary = await send('multipart/form-data', 'whatever');
    expect(noBoundary.status).toBe(400);
    const fieldOnly = await send(
      'multipart/form-data; boundary=XYZ',
      '--XYZ\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n--XYZ--\r\n',
    );
    expect((await json(fieldOnly))['error'].message).toMatch(/no file part/);
    expect((await send('application/json', '{}')).status).toBe(415);
    expect((await json(await fetch(`${py}/files?${q}`, { headers: bearer })))['value']).toEqual([]);
  }, 120_000);

  test('LangChain SessionsBashTool: shellCommand only; status is the exit code; files under /mnt/data', async () => {
    const id = newIdentifier();
    const q = `identifier=${encodeURIComponent(id)}&api-version=2025-02-02-preview`;
    const r = await json(await post(`${sh}/executions?${q}`, { shellCommand: 'echo hi; echo err >&2; exit 3' }));
    expect(r['status']).toBe('3');
    expect(Number.parseInt(r['status'], 10)).toBe(3);
    expect(r['result']).toMatchObject({ stdout: 'hi\n', stderr: 'err\n' });
    const up = await json(await upload(`${sh}/files?${q}&path=/mnt/data`, 'notes.txt', 'line1\n'));
    expect(up).toMatchObject({ name: 'notes.txt', sizeInBytes: 6 });
    const cat = await json(await post(`${sh}/executions?${q}`, { shellCommand: 'cat /mnt/data/notes.txt' }));
    expect(cat).toMatchObject({ status: '0', result: { stdout: 'line1\n' } });
    const argv = await json(await post(`${sh}/executions?${q}`, { execCommandAndArgs: ['wc', '-c'], stdin: 'abcd' }));
    expect(argv['result'].stdout.trim()).toBe('4');
    const dl = await fetch(`${sh}/files/${encodeURIComponent('notes.txt')}/content?${q}`, { headers: bearer });
    expect(await dl.text()).toBe('line1\n');
    const list = await json(await fetch(`${sh}/files?${q}`, { headers: bearer }));
    expect(list['value'].map((f: { name: string; sizeInBytes: number }) => [f.name, f.sizeInBytes])).toEqual([['notes.txt', 6]]);
    const code = await post(`${sh}/executions?${q}`, {
      codeInputType: 'Inline',
      executionType: 'Synchronous',
      code: 'echo via-code',
    });
    expect((await json(code))['result'].stdout).toBe('via-code\n');
  }, 120_000);
});
