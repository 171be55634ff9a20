/**
 * What cluster mode adds to an acquire (issue 14): a real one-member etcd on loopback and two
 * ClusterMembers in this process, each with its own pool on the target's backend and its own HTTP
 * listener for member requests. Interleaved per sample, so every half sees the same load:
 *
 * - a single-host warm acquire of a new identifier (plain SessionPool) against a cluster acquire
 *   of a new identifier (lookup + claim transaction in etcd + the same warm acquire);
 * - acquire + execute on the owner against the same on the other member (one etcd lookup and one
 *   forwarded HTTP request to the owner).
 */

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { ClusterMember } from '../../src/cluster/cluster-member.js';
import type { ClusterPool } from '../../src/cluster/cluster-pool.js';
import { EtcdOwnershipStore } from '../../src/cluster/etcd-store.js';
import { EtcdCluster, etcdAvailable } from '../../test/cluster/harness/etcd.js';
import { identifiers, openPool, readyTimeoutMs, waitForReady, type TargetContext } from '../pool-helpers.js';
import { summarize } from '../stats.js';
import { measurementsOf, type Scenario } from './scenario.js';

const SECRET = 'bench-cluster-secret-0123456789abcdef';

interface BenchMember {
  readonly member: ClusterMember;
  readonly pool: ClusterPool;
  readonly server: Server;
}

async function startMember(context: TargetContext, etcd: EtcdCluster, nodeId: string, prefix: string, ready: number) {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const member = new ClusterMember({
    store: new EtcdOwnershipStore({ hosts: etcd.clientUrls, prefix }),
    nodeId,
    advertise: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    secret: SECRET,
  });
  server.on('request', member.peerHandler);
  member.start();
  await member.ready();
  // The same pool name on both members: that is what makes it one pool across them.
  const pool = member.pool(
    openPool(context, { name: 'bench-cluster', readySessionInstances: ready, maxConcurrentSessions: ready + 4 }),
  );
  await pool.local.start();
  await waitForReady(pool.local, ready, readyTimeoutMs(context, ready));
  return { member, pool, server } satisfies BenchMember;
}

async function stopMember(node: BenchMember | undefined): Promise<void> {
  if (node === undefined) return;
  await node.pool.close();
  await node.member.close();
  await new Promise((r) => node.server.close(r));
}

export const cluster: Scenario = {
  name: 'cluster',
  description: 'cluster mode against one host: acquire with an etcd claim, execute forwarded to the owner',
  async run(context) {
    if (!etcdAvailable()) throw new Error('etcd is not installed (npm run setup installs Debian etcd-server)');
    const m = measurementsOf(context, this.name);
    const { batch, rounds } = context.sizes.warm;
    const n = context.target.inProcess ? Math.min(200, batch * rounds) : Math.min(10, batch);
    const etcd = await EtcdCluster.start({ count: 1 });
    const prefix = `bench-${process.pid}-${Date.now()}/`;
    let a: BenchMember | undefined;
    let b: BenchMember | undefined;
    const single = openPool(context, { readySessionInstances: n, maxConcurrentSessions: n + 4 });
    try {
      await single.start();
      await waitForReady(single, n, readyTimeoutMs(context, n));
      a = await startMember(context, etcd, 'bench-a', prefix, n);
      b = await startMember(context, etcd, 'bench-b', prefix, 2);
      const ids = identifiers(n, 'cluster');
      const singleIds = identifiers(n, 'single');
      const samples = { single: [] as number[], claim: [] as number[], owner: [] as number[], forwarded: [] as number[] };
      const probe = { code: context.target.code, language: context.target.language };
      for (let i = 0; i < n; i += 1) {
        let t0 = performance.now();
        await single.acquire(singleIds[i]!);
        samples.single.push(performance.now() - t0);
        t0 = performance.now();
        await a.pool.acquire(ids[i]!);
        samples.claim.push(performance.now() - t0);
        t0 = performance.now();
        const local = await (await a.pool.acquire(ids[i]!)).execute(probe);
        samples.owner.push(performance.now() - t0);
        t0 = performance.now();
        const remote = await (await b.pool.acquire(ids[i]!)).execute(probe);
        samples.forwarded.push(performance.now() - t0);
        if (!context.target.check(local) || !context.target.check(remote)) {
          throw new Error(`the probe failed: ${local.stderr.slice(0, 200)} ${remote.stderr.slice(0, 200)}`);
        }
      }
      const single50 = summarize(samples.single).p50;
      const owner50 = summarize(samples.owner).p50;
      return [
        m.latency('single-host acquire (new identifier)', summarize(samples.single), { sessions: n }),
        m.latency('cluster acquire, local claim (new identifier)', summarize(samples.claim), {
          sessions: n,
          addedP50Ms: Number((summarize(samples.claim).p50 - single50).toFixed(3)),
        }),
        m.latency('acquire + execute on the owner', summarize(samples.owner), { sessions: n }),
        m.latency('acquire + execute forwarded from another member', summarize(samples.forwarded), {
          sessions: n,
          addedP50Ms: Number((summarize(samples.forwarded).p50 - owner50).toFixed(3)),
        }),
      ];
    } finally {
      await single.close();
      await stopMember(b);
      await stopMember(a);
      await etcd.destroy();
    }
  },
};
