/**
 * Cluster mode with container sessions: two `sandpool serve --etcd …` members in their own network
 * namespaces (etcd in a third), pools defined over HTTP. A request for an identifier on the member
 * that does not own it reaches the owner's container: file upload and download both ways (streamed
 * over the member wire), code that reads the uploaded file, and custom-container HTTP forwarding
 * (method, path, query, body and headers through; the caller's Authorization not).
 */

import { execFileSync } from 'node:child_process';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { buildEchoImage, podmanAvailable } from '../container/helpers.js';
import { EtcdCluster, etcdAvailable } from './harness/etcd.js';
import { ADMIN_KEY, call, SandpoolMember } from './harness/members.js';
import { canBuildNetworks, TestNetwork } from './harness/netns.js';

const REFLECT = `require('http').createServer((q, s) => {
  let body = '';
  q.on('data', (c) => (body += c));
  q.on('end', () => {
    s.setHeader('content-type', 'application/json');
    s.setHeader('x-from-container', 'yes');
    s.end(JSON.stringify({ method: q.method, url: q.url, headers: q.headers, body }));
  });
}).listen(8080);`;

async function ownerOf(etcd: EtcdCluster, prefix: string, pool: string, id: string): Promise<string | undefined> {
  const out = execFileSync(
    'etcdctl',
    ['--endpoints', etcd.clientUrls.join(','), 'get', '--print-value-only', `${prefix}owners/${pool}/${id}`],
    {
      encoding: 'utf8',
      env: { ...process.env, ETCDCTL_API: '3' },
    },
  ).trim();
  return out === '' ? undefined : (JSON.parse(out) as { member: string }).member;
}

function upload(base: string, pool: string, id: string, name: string, content: string): Promise<Response> {
  const form = new FormData();
  form.append('file', new Blob([content], { type: 'text/plain' }), name);
  return fetch(`${base}/pools/${pool}/files/upload?identifier=${id}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_KEY}` },
    body: form,
    signal: AbortSignal.timeout(60_000),
  });
}

describe.skipIf(!canBuildNetworks() || !etcdAvailable() || !podmanAvailable())('cluster mode with container sessions', () => {
  let net: TestNetwork;
  let etcd: EtcdCluster;
  let m1: SandpoolMember;
  let m2: SandpoolMember;
  const prefix = `sandpool-containers-${process.pid}/`;
  const pids: number[] = [];

  beforeAll(async () => {
    const image = buildEchoImage();
    net = await TestNetwork.create(['etcd1', 'c1', 'c2']);
    etcd = await EtcdCluster.start({ net, hosts: ['etcd1'] });
    m1 = new SandpoolMember(net, 'c1', { etcd: etcd.clientUrls, leaseTtlSeconds: 10, prefix });
    m2 = new SandpoolMember(net, 'c2', { etcd: etcd.clientUrls, leaseTtlSeconds: 10, prefix });
    await Promise.all([m1.start(), m2.start()]);
    pids.push(m1.pid!, m2.pid!);
    const shell = await call(m1.url, 'PUT', '/pools/shell', {
      backend: 'container',
      properties: { containerType: 'Shell', scaleConfiguration: { readySessionInstances: 1, maxConcurrentSessions: 3 } },
    });
    expect(shell.status, shell.text).toBe(201);
    const reflect = await call(m1.url, 'PUT', '/pools/reflect', {
      backend: 'container',
      properties: {
        containerType: 'CustomContainer',
        scaleConfiguration: { readySessionInstances: 1, maxConcurrentSessions: 3 },
        customContainerTemplate: {
          containers: [{ name: 'main', image, command: ['node', '-e', REFLECT], resources: { cpu: 0.5, memory: '0.5Gi' } }],
          ingress: { targetPort: 8080 },
        },
      },
    });
    expect(reflect.status, reflect.text).toBe(201);
    // Both members apply both definitions and fill their ready sets.
    for (const member of [m1, m2]) {
      for (let i = 0; ; i += 1) {
        const ready = await fetch(`${member.url}/readyz`).catch(() => undefined);
        const body = (await ready?.json().catch(() => undefined)) as { pools?: unknown[] } | undefined;
        if (ready?.status === 200 && body?.pools?.length === 2) break;
        if (i > 600) throw new Error(`${member.name} never got both pools ready:\n${member.tail()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }, 300_000);

  afterAll(async () => {
    // A drain first: each member removes its own containers.
    await Promise.allSettled([m1?.stop(), m2?.stop()]);
    await Promise.allSettled([m1?.destroy(), m2?.destroy()]);
    for (const pid of pids) {
      const left = execFileSync('podman', ['ps', '-aq', '--filter', `label=sandpool.owner-pid=${pid}`], {
        encoding: 'utf8',
      }).trim();
      if (left !== '') execFileSync('podman', ['rm', '-f', ...left.split('\n')]);
      expect(left, `containers left by member ${pid}`).toBe('');
    }
    await etcd?.destroy();
    await net?.destroy();
  }, 120_000);

  it('uploads and downloads files through the member that does not own the session', async () => {
    const id = 'files-forwarded';
    const first = await upload(m1.url, 'shell', id, 'one.txt', 'written via the owner\n');
    expect(first.status, await first.clone().text()).toBe(200);
    expect(await ownerOf(etcd, prefix, 'shell', id)).toBe('c1');
    // Read on the non-owner: the bytes come from c1's container.
    const down = await fetch(`${m2.url}/pools/shell/files/content/one.txt?identifier=${id}`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    expect(down.status).toBe(200);
    expect(down.headers.get('x-sandpool-member')).toBe('c2');
    expect(await down.text()).toBe('written via the owner\n');
    // Write on the non-owner, read on the owner and from code in the session.
    const big = 'x'.repeat(3 * 1024 * 1024);
    const second = await upload(m2.url, 'shell', id, 'two.txt', big);
    expect(second.status, await second.clone().text()).toBe(200);
    const back = await fetch(`${m1.url}/pools/shell/files/content/two.txt?identifier=${id}`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    expect((await back.text()).length).toBe(big.length);
    const listing = await call(m2.url, 'GET', `/pools/shell/files?identifier=${id}`);
    const names = (listing.body as { value: { name: string }[] }).value.map((f) => f.name).sort();
    expect(names).toEqual(['one.txt', 'two.txt']);
    const run = await call(m2.url, 'POST', `/pools/shell/executions?identifier=${id}`, {
      shellCommand: 'cat /mnt/data/one.txt && wc -c < /mnt/data/two.txt',
    });
    expect(run.status, run.text).toBe(200);
    expect((run.body as { result: { stdout: string } }).result.stdout).toBe(`written via the owner\n${big.length}\n`);
    const removed = await call(m2.url, 'DELETE', `/pools/shell/files/one.txt?identifier=${id}`);
    expect(removed.status).toBe(204);
    const missing = await call(m1.url, 'GET', `/pools/shell/files/one.txt?identifier=${id}`);
    expect(missing.status).toBe(404);
  });

  it('forwards custom-container HTTP requests from the non-owner to the owner’s container', async () => {
    const id = 'custom-forwarded';
    const claim = await call(m1.url, 'GET', `/pools/reflect/warmup?identifier=${id}`);
    expect(claim.status, claim.text).toBe(200);
    expect(await ownerOf(etcd, prefix, 'reflect', id)).toBe('c1');
    const response = await fetch(`${m2.url}/pools/reflect/api/items?identifier=${id}&q=1`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'text/plain', 'x-custom': 'kept' },
      body: 'hello from c2',
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-from-container')).toBe('yes');
    expect(response.headers.get('x-sandpool-member')).toBe('c2');
    const seen = (await response.json()) as { method: string; url: string; headers: Record<string, string>; body: string };
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe(`/api/items?identifier=${id}&q=1`);
    expect(seen.body).toBe('hello from c2');
    expect(seen.headers['x-custom']).toBe('kept');
    expect(seen.headers['authorization']).toBeUndefined();
    expect(Object.keys(seen.headers).filter((h) => h.startsWith('x-sandpool-'))).toEqual([]);
  });
});
