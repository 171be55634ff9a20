/**
 * Uploads against a real container session, through the server: a client that goes away mid-body
 * or stalls leaves neither a temp file in /mnt/data nor an open transfer (each would otherwise hold
 * session memory and one of the agent's 64 transfer slots), and the session keeps working. Files
 * in /mnt/data live in memory: an upload that would leave the session's code without memory is
 * refused with 507 before it is written, instead of succeeding and getting the kernel OOM-killed.
 */

import { connect } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { SessionPool } from '../../src/index.js';
import { ADMIN_KEY, containerBackendAvailable, json, requestsMultipart, startServer, type Harness } from './helpers.js';

const available = await containerBackendAvailable();

describe.skipIf(!available)('uploads to a container session', () => {
  let h: Harness;
  const id = `uploads-${Date.now()}`;

  beforeAll(async () => {
    const pool = new SessionPool({
      name: 'py',
      backend: new ContainerBackend(),
      containerType: 'PythonLTS',
      readySessionInstances: 1,
      maxConcurrentSessions: 2,
      limits: { memoryMb: 256, diskMb: 64, maxFileSizeBytes: 8 << 20 },
    });
    const small = new SessionPool({
      name: 'small',
      backend: new ContainerBackend(),
      containerType: 'PythonLTS',
      readySessionInstances: 1,
      maxConcurrentSessions: 1,
      // diskMb (the default 1024) and maxFileSizeBytes each allow far more than memory leaves.
      limits: { memoryMb: 256, maxFileSizeBytes: 128 << 20 },
    });
    h = await startServer({ pools: [pool, small], withDefaultPool: false, bodyIdleTimeoutMs: 1000 });
  }, 180_000);

  afterAll(async () => {
    await h?.close();
  }, 60_000);

  const run = async (code: string) => {
    const r = await h.request(`/pools/py/code/execute?identifier=${id}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ properties: { code } }),
    });
    expect(r.status).toBe(200);
    return (await json(r))['properties'];
  };
  const dataDirEntries = async () =>
    JSON.parse((await run(`import os, json\nprint(json.dumps(sorted(os.listdir('/mnt/data'))))`)).stdout);

  /** Send the head of a multipart upload declaring `total` bytes, then `sent` bytes of the file, and stop. */
  const partialUpload = (sent: number, total: number, then: 'abort' | 'stall') =>
    new Promise<string>((resolve) => {
      const url = new URL(h.url);
      const { body, contentType } = requestsMultipart('partial.bin', Buffer.alloc(total, 0x61));
      const socket = connect(Number(url.port), url.hostname);
      let answer = '';
      socket.on('data', (d) => {
        answer += d.toString();
      });
      socket.on('error', () => {});
      socket.on('close', () => resolve(answer));
      socket.write(
        `POST /pools/py/files/upload?identifier=${id} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${ADMIN_KEY}\r\n` +
          `Content-Type: ${contentType}\r\nContent-Length: ${body.length}\r\n\r\n`,
      );
      socket.write(body.subarray(0, 200 + sent));
      if (then === 'abort') setTimeout(() => socket.destroy(), 800);
    });

  it('a client that disconnects mid-upload leaves no temp file and no open transfer', async () => {
    await run('state = 41');
    for (let i = 0; i < 3; i++) await partialUpload(1 << 20, 4 << 20, 'abort');
    await expect.poll(dataDirEntries, { timeout: 15_000, interval: 500 }).toEqual([]);
    expect((await run('state + 1')).result).toBe(42);
  }, 120_000);

  it('a stalled upload is answered 408 and cleaned up the same way', async () => {
    const answer = await partialUpload(512 << 10, 4 << 20, 'stall');
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    await expect.poll(dataDirEntries, { timeout: 15_000, interval: 500 }).toEqual([]);
  }, 120_000);

  it('past the agent’s 64 transfer slots, uploads still work', async () => {
    // 70 aborted uploads: each left an open transfer before the fix, so the 65th onward failed.
    await Promise.all(Array.from({ length: 70 }, () => partialUpload(1024, 1 << 20, 'abort')));
    const { body, contentType } = requestsMultipart('ok.txt', 'fine');
    const r = await h.request(`/pools/py/files/upload?identifier=${id}`, {
      method: 'POST',
      headers: { 'content-type': contentType },
      body,
    });
    expect(r.status, await r.clone().text()).toBe(200);
    await expect.poll(dataDirEntries, { timeout: 15_000, interval: 500 }).toEqual(['ok.txt']);
  }, 180_000);

  it('refuses with 507 the upload that would leave the session without memory; the session and its files live on', async () => {
    const sid = `memory-${Date.now()}`;
    const exec = async (code: string) => {
      const r = await h.request(`/pools/small/code/execute?identifier=${sid}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ properties: { code } }),
      });
      expect(r.status).toBe(200);
      return (await json(r))['properties'];
    };
    const put = async (name: string, mb: number) => {
      const { body, contentType } = requestsMultipart(name, Buffer.alloc(mb << 20, 0x5a));
      return await h.request(`/pools/small/files/upload?identifier=${sid}`, {
        method: 'POST',
        headers: { 'content-type': contentType },
        body,
      });
    };
    expect((await exec('import numpy\nstate = 41')).status).toBe('Success');
    // Limits are consistent: /mnt/data can never hold more than the memory limit.
    const sizes = JSON.parse(
      (
        await exec(
          "import os, json\nprint(json.dumps({m: os.statvfs(m).f_blocks * os.statvfs(m).f_frsize >> 20 for m in ('/mnt/data', '/tmp', '/var/tmp', '/run')}))",
        )
      ).stdout,
    );
    expect(sizes['/mnt/data']).toBeLessThanOrEqual(256);
    // What memory leaves above the agent's reserve (32 MiB here), as the session's cgroup says now.
    const usedMb = Number(
      (
        await exec(
          "import os\nv2 = '/sys/fs/cgroup/memory.current'\nprint(int(open(v2 if os.path.exists(v2) else '/sys/fs/cgroup/memory/memory.usage_in_bytes').read()) >> 20)",
        )
      ).stdout,
    );
    const roomMb = 256 - 32 - usedMb;
    expect(roomMb).toBeGreaterThan(40);
    // Half the room fits; the whole room again cannot (each fits maxFileSizeBytes and diskMb).
    const firstMb = Math.floor(roomMb / 2);
    const first = await put('first.bin', firstMb);
    expect(first.status, await first.clone().text()).toBe(200);
    const second = await put('second.bin', Math.min(roomMb, 120));
    expect(second.status).toBe(507);
    const error = (await json(second))['error'];
    expect(error.message).toMatch(/room for \d+ more MiB in \/mnt\/data: its files live in memory/);
    // Nothing of the refused upload was kept, the first file is intact, and the kernel is alive.
    expect(
      await (async () =>
        JSON.parse((await exec("import os, json\nprint(json.dumps(sorted(os.listdir('/mnt/data'))))")).stdout))(),
    ).toEqual(['first.bin']);
    const after = await exec('state + 1');
    expect(after.status, after.stderr).toBe('Success');
    expect(after.result).toBe(42);
    expect((await exec("os.path.getsize('/mnt/data/first.bin') >> 20")).result).toBe(firstMb);
  }, 180_000);

  it('every tmpfs the session can write to has a size of its own (/tmp, /var/tmp, /dev/shm, /mnt/data)', async () => {
    // Every tmpfs the session's uid can write to, with its mount options.
    const writable = JSON.parse(
      (
        await run(
          "import os, json\nrows = [l.split() for l in open('/proc/self/mounts')]\nprint(json.dumps({r[1]: r[3] for r in rows if r[2] == 'tmpfs' and os.access(r[1], os.W_OK)}))",
        )
      ).stdout,
    ) as Record<string, string>;
    expect(Object.keys(writable)).toEqual(expect.arrayContaining(['/dev/shm', '/mnt/data', '/tmp', '/var/tmp']));
    for (const [mount, options] of Object.entries(writable)) expect(options, mount).toMatch(/(^|,)size=\d+k/);
    // /var/tmp is world-writable like /tmp: its own cap stops a fill there.
    const fill = await run(
      "import errno\nn = 0\ntry:\n    with open('/var/tmp/fill', 'wb') as f:\n        while n < 64:\n            f.write(b'x' * (1 << 20)); f.flush(); n += 1\nexcept OSError as e:\n    print(errno.errorcode[e.errno])\nprint(n)",
    );
    expect(fill.stdout).toMatch(/ENOSPC\n1[0-6]\n/);
  }, 120_000);

  it('multipart file names: raw UTF-8 (requests, httpx, aiohttp) and RFC 5987 arrive intact; invisible controls are refused', async () => {
    const post = (body: Buffer, contentType: string) =>
      h.request(`/pools/py/files?identifier=${id}`, { method: 'POST', headers: { 'content-type': contentType }, body });
    const raw = requestsMultipart('données 报告 📈.csv', 'x');
    const first = await post(raw.body, raw.contentType);
    expect(first.status, await first.clone().text()).toBe(200);
    expect((await json(first))['name']).toBe('données 报告 📈.csv');
    const boundary = 'b0undary';
    const rfc5987 = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename*=UTF-8''%C3%A9t%C3%A9.txt\r\n\r\ny\r\n--${boundary}--\r\n`,
    );
    const second = await post(rfc5987, `multipart/form-data; boundary=${boundary}`);
    expect((await json(second))['name']).toBe('été.txt');
    for (const name of ['invoice\u202Etxt.exe', 'a\u009b31mb', 'zero\u200bwidth']) {
      const bad = requestsMultipart(name, 'z');
      const r = await post(bad.body, bad.contentType);
      expect(r.status, name).toBe(400);
      expect((await json(r))['error'].message).toMatch(/control or invisible formatting character/);
    }
    const names = (await json(await h.request(`/pools/py/files?identifier=${id}`)))['value'].map((f: { name: string }) => f.name);
    expect(names).toEqual(expect.arrayContaining(['données 报告 📈.csv', 'été.txt']));
    expect(names.some((n: string) => /[\u202E\u009b\u200b]/.test(n))).toBe(false);
  }, 120_000);
});
