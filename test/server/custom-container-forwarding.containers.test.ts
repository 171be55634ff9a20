/**
 * CustomContainer pools defined over HTTP (Azure properties) and requests forwarded to the session's
 * container: path, query, method, headers and body pass through; the caller's Authorization does
 * not; a container that dies mid-request is a 502.
 */

import { execFileSync } from 'node:child_process';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import WebSocket from 'ws';

import { ContainerBackend } from '../../backends/container/index.js';
import { QuickJSBackend } from '../../backends/quickjs/index.js';
import { buildEchoImage } from '../container/helpers.js';
import { ADMIN_KEY, containerBackendAvailable, json, newIdentifier, startServer, type Harness } from './helpers.js';

const available = await containerBackendAvailable();

// A tiny HTTP server run inside the container: reflects what it received; /die exits without answering.
const REFLECT = `require('http').createServer((q, s) => {
  if (q.url.startsWith('/die')) process.exit(1);
  let body = '';
  q.on('data', (c) => (body += c));
  q.on('end', () => {
    s.setHeader('content-type', 'application/json');
    s.setHeader('x-from-container', 'yes');
    s.end(JSON.stringify({ method: q.method, url: q.url, headers: q.headers, body }));
  });
}).listen(8080);`;

describe.skipIf(!available)('custom-container forwarding', () => {
  let h: Harness;
  let ep: string;

  beforeAll(async () => {
    const image = buildEchoImage();
    h = await startServer({
      withDefaultPool: false,
      backends: { container: () => new ContainerBackend(), quickjs: () => new QuickJSBackend() },
    });
    const put = await h.request('/pools/reflect', {
      method: 'PUT',
      body: JSON.stringify({
        backend: 'container',
        properties: {
          containerType: 'CustomContainer',
          scaleConfiguration: { readySessionInstances: 1, maxConcurrentSessions: 4 },
          dynamicPoolConfiguration: { lifecycleConfiguration: { lifecycleType: 'Timed', cooldownPeriodInSeconds: 300 } },
          customContainerTemplate: {
            containers: [{ name: 'main', image, command: ['node', '-e', REFLECT], resources: { cpu: 0.5, memory: '0.5Gi' } }],
            ingress: { targetPort: 8080 },
          },
        },
      }),
    });
    expect(put.status).toBe(201);
    ep = (await json(put))['properties'].poolManagementEndpoint;
    // The echo image's own server (HTTP + WebSocket echo) for upgrades.
    const ws = await h.request('/pools/wsecho', {
      method: 'PUT',
      body: JSON.stringify({
        backend: 'container',
        properties: {
          containerType: 'CustomContainer',
          scaleConfiguration: { readySessionInstances: 1, maxConcurrentSessions: 2 },
          customContainerTemplate: { containers: [{ name: 'main', image }], ingress: { targetPort: 8080 } },
        },
      }),
    });
    expect(ws.status).toBe(201);
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

  test('method, path, query, headers and body pass through; Authorization does not', async () => {
    const id = newIdentifier();
    const r = await fetch(`${ep}/api/items/7?identifier=${id}&x=1`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${ADMIN_KEY}`,
        'content-type': 'text/plain',
        'x-custom': 'kept',
        cookie: 'session=secret',
      },
      body: 'payload',
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-from-container')).toBe('yes');
    const seen = await json(r);
    expect(seen).toMatchObject({ method: 'POST', url: `/api/items/7?identifier=${id}&x=1`, body: 'payload' });
    expect(seen['headers']['x-custom']).toBe('kept');
    expect(seen['headers']['authorization']).toBeUndefined();
    expect(seen['headers']['cookie']).toBeUndefined();
    expect(JSON.stringify(seen)).not.toContain(ADMIN_KEY);
    // Same identifier, same container: etag stays.
    const a = await json(await h.request(`/pools/reflect/.management/getSession?identifier=${id}`, { method: 'POST' }));
    await fetch(`${ep}/again?identifier=${id}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    const b = await json(await h.request(`/pools/reflect/.management/getSession?identifier=${id}`, { method: 'POST' }));
    expect(b['etag']).toBe(a['etag']);
  }, 120_000);

  test('WebSocket upgrades reach the container through session.connect()', async () => {
    const url = `${h.url.replace('http', 'ws')}/pools/wsecho/ws?identifier=${newIdentifier()}`;
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    const replies: string[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () => ws.send('ping through sandpool'));
      ws.on('message', (data) => {
        replies.push(String(data));
        resolve();
      });
      ws.on('error', reject);
    });
    expect(replies).toEqual(['echo: ping through sandpool']);
    ws.close();
    const refused = new WebSocket(url);
    const status = await new Promise<number>((resolve) => {
      refused.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      refused.on('error', () => resolve(-1));
    });
    expect(status).toBe(401);
  }, 120_000);

  test('forwarding still needs a credential and an identifier', async () => {
    expect((await fetch(`${ep}/api?identifier=${newIdentifier()}`)).status).toBe(401);
    const missing = await fetch(`${ep}/api`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    expect(missing.status).toBe(400);
  }, 60_000);

  test('a container that dies mid-request → 502; the identifier then gets a fresh session', async () => {
    const id = newIdentifier();
    const auth = { authorization: `Bearer ${ADMIN_KEY}` };
    const before = await json(await fetch(`${ep}/hello?identifier=${id}`, { headers: auth }));
    expect(before['url']).toBe(`/hello?identifier=${id}`);
    const dead = await fetch(`${ep}/die?identifier=${id}`, { headers: auth });
    expect(dead.status).toBe(502);
    expect((await json(dead))['error'].code).toBe('SessionContainerUnreachable');
    let status = 0;
    for (let i = 0; i < 60 && status !== 200; i++) {
      status = (await fetch(`${ep}/hello?identifier=${id}`, { headers: auth })).status;
      if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(status).toBe(200);
    const stop = await h.request(`/pools/reflect/.management/stopSession?identifier=${id}&api-version=2025-02-02-preview`, {
      method: 'POST',
    });
    expect(await stop.text()).toBe(`Session ${id} in session pool reflect stopped.`);
  }, 120_000);
});
