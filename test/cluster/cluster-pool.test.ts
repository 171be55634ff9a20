/**
 * The library's cluster mode on a real etcd (loopback): two members in this process, each with its
 * own QuickJS pool and its own HTTP listener for member requests. Claims, forwarding with state,
 * files, racing claims, release on stop, and a clean leave.
 */

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { QuickJSBackend } from '../../backends/quickjs/index.js';
import { ClusterMember, EtcdOwnershipStore, RemoteSession, type ClusterPool } from '../../src/cluster/index.js';
import { ClusterUnavailableError } from '../../src/errors.js';
import { SessionPool } from '../../src/session-pool.js';
import { EtcdCluster, etcdAvailable } from './harness/etcd.js';

const SECRET = 'test-cluster-secret-0123456789abcdef';

interface Node {
  member: ClusterMember;
  pool: ClusterPool;
  server: Server;
}

async function startNode(etcd: EtcdCluster, nodeId: string, prefix: string): Promise<Node> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const member = new ClusterMember({
    store: new EtcdOwnershipStore({ hosts: etcd.clientUrls, prefix }),
    nodeId,
    advertise: `http://127.0.0.1:${port}`,
    secret: SECRET,
  });
  server.on('request', member.peerHandler);
  member.start();
  await member.ready();
  const pool = member.pool(
    new SessionPool({ name: 'js', backend: new QuickJSBackend(), containerType: 'NodeLTS', readySessionInstances: 2 }),
  );
  await pool.local.start();
  return { member, pool, server };
}

async function stopNode(node: Node): Promise<void> {
  await node.pool.close();
  await node.member.close();
  await new Promise((r) => node.server.close(r));
}

describe.skipIf(!etcdAvailable())('ClusterPool on a real etcd', () => {
  let etcd: EtcdCluster;
  let a: Node;
  let b: Node;
  const prefix = `test-${process.pid}-${Date.now()}/`;

  beforeAll(async () => {
    etcd = await EtcdCluster.start({ count: 1 });
    a = await startNode(etcd, 'node-a', prefix);
    b = await startNode(etcd, 'node-b', prefix);
  });

  afterAll(async () => {
    await Promise.allSettled([a && stopNode(a), b && stopNode(b)]);
    await etcd?.destroy();
  });

  it('claims locally, forwards from the other member with state kept', async () => {
    const local = await a.pool.acquire('user-forwarded');
    expect(local).not.toBeInstanceOf(RemoteSession);
    await local.execute({ code: 'var counter = 41' });
    const remote = await b.pool.acquire('user-forwarded');
    expect(remote).toBeInstanceOf(RemoteSession);
    expect((remote as RemoteSession).owner.member).toBe('node-a');
    const result = await remote.execute({ code: 'counter + 1' });
    expect(result.status).toBe('Succeeded');
    expect(result.result).toBe(42);
    expect(remote.id).toBe(local.id);
    expect(b.pool.local.stats().allocated).toBe(0);
  });

  it('gives exactly one session to racing acquires on both members', async () => {
    const id = 'user-race-1';
    const sessions = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).pool.acquire(id)));
    const writes = await Promise.all(
      sessions.map((s, i) => s.execute({ code: `globalThis.seen = (globalThis.seen ?? 0) + 1; ${i}` })),
    );
    expect(writes.every((r) => r.status === 'Succeeded')).toBe(true);
    const total = await sessions[0]!.execute({ code: 'globalThis.seen' });
    expect(total.result).toBe(20);
    const owners = new Set(sessions.map((s) => (s instanceof RemoteSession ? s.owner.member : s === undefined ? '' : 'local')));
    expect(owners.size).toBe(2); // local handles on the winner, remote handles on the other
    expect(a.pool.local.get(id) === undefined).not.toBe(b.pool.local.get(id) === undefined);
  });

  it('lists, reads and writes files through a remote handle', async () => {
    // QuickJS has no files: the owner's typed error crosses the wire.
    await a.pool.acquire('user-files');
    const remote = await b.pool.acquire('user-files');
    await expect(remote.listFiles()).rejects.toMatchObject({ code: 'SANDPOOL_UNSUPPORTED' });
  });

  it('frees the identifier when its session stops, so the next acquire claims anew', async () => {
    const first = await a.pool.acquire('user-stopped');
    await first.execute({ code: 'var kept = 1' });
    const remote = await b.pool.acquire('user-stopped');
    await remote.stop();
    await expect(first.execute({ code: 'kept' })).rejects.toMatchObject({ code: 'SANDPOOL_SESSION_NOT_FOUND' });
    // The release is asynchronous; the next claim on b wins once the key is gone (or finds a's stale key and waits).
    let again = await b.pool.acquire('user-stopped').catch(() => undefined);
    for (let i = 0; i < 20 && (again === undefined || again instanceof RemoteSession); i += 1) {
      await new Promise((r) => setTimeout(r, 50));
      again = await b.pool.acquire('user-stopped').catch(() => undefined);
    }
    expect(again).toBeDefined();
    const fresh = await again!.execute({ code: 'typeof kept' });
    expect(fresh.result).toBe('undefined');
  });

  it('refuses a forwarded request that carries a stale epoch', async () => {
    await a.pool.acquire('user-epoch');
    const owner = await b.pool.owner('user-epoch');
    expect(owner).toBeDefined();
    const stale = new RemoteSession(b.member.peers, 'js', 'user-epoch', { ...owner!, epoch: '1' });
    await expect(stale.execute({ code: '1' })).rejects.toBeInstanceOf(ClusterUnavailableError);
  });

  it('rejects member requests without the cluster secret', async () => {
    const response = await fetch(`${a.member.advertise}/.cluster/v1/stats`);
    expect(response.status).toBe(401);
  });
});
