/**
 * `sandpool/cluster`: one pool across many hosts. Identifier ownership lives in etcd (claims are
 * one transaction under the member's lease); a session owned by another member is reached through
 * a handle that forwards to it over HTTP. See docs/CLUSTER.md.
 *
 * @example
 * const member = new ClusterMember({
 *   store: new EtcdOwnershipStore({ hosts: ['http://etcd-1:2379'] }),
 *   nodeId: 'host-a', advertise: 'http://host-a:8080', secret: process.env.SANDPOOL_CLUSTER_SECRET!,
 * });
 * http.createServer((req, res) => member.peerHandler(req, res)).listen(8080);
 * member.start();
 * await member.ready();
 * const pool = member.pool(new SessionPool({ name: 'js', backend: new QuickJSBackend() }));
 * await pool.local.start();
 * const session = await pool.acquire('user-42'); // here or on another member: the same API
 */

export { ClusterMember } from './cluster-member.js';
export type { ClusterMemberEvents, ClusterMemberOptions, MemberStats } from './cluster-member.js';
export { ClusterPool } from './cluster-pool.js';
export type { ClusterSessionInfo } from './cluster-pool.js';
export { EtcdOwnershipStore } from './etcd-store.js';
export type { EtcdStoreOptions } from './etcd-store.js';
export { LeaseKeeper } from './lease-keeper.js';
export type { LeaseKeeperEvents, LeaseKeeperOptions, LeaseState } from './lease-keeper.js';
export type {
  ClaimResult,
  DocumentChange,
  LeaseOperations,
  MemberRecord,
  OwnerRecord,
  Ownership,
  OwnershipStore,
} from './ownership-store.js';
export type { PeerRoute } from './peer-handler.js';
export { RemoteSession } from './remote-session.js';
export type { SessionApi } from './session-api.js';
export { ClusterUnavailableError } from '../errors.js';
