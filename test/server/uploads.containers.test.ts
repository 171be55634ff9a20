/**
 * Uploads against a real container session, through the server: a client that goes away mid-body
 * or stalls leaves neither a temp file in /mnt/data nor an open transfer (each would otherwise hold
 * session memory and one of the agent's 64 transfer slots), and the session keeps working.
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
    h = await startServer({ pools: [pool], withDefaultPool: false, bodyIdleTimeoutMs: 1000 });
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
});
