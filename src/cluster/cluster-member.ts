/**
 * This process as a member of a cluster: its node id and advertised URL, its one lease (kept by
 * LeaseKeeper on our own timer), its announcement under that lease, the pools it serves as
 * ClusterPools, and the peer handler other members call. A member that loses its lease drops every
 * session it owned and claims a new lease; one that leaves cleanly revokes its lease, so all its
 * identifiers are free at once.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';

import { EventEmitter } from 'eventemitter3';
import { z } from 'zod';

import { ClusterUnavailableError, InvalidOptionsError } from '../errors.js';
import { parseOrThrow } from '../options.js';
import type { SessionPool } from '../session-pool.js';
import type { PoolStats } from '../session-types.js';
import { ClusterPool, type ClusterSessionInfo, type MemberContext } from './cluster-pool.js';
import { LeaseKeeper, type LeaseKeeperOptions } from './lease-keeper.js';
import type { MemberRecord, OwnershipStore } from './ownership-store.js';
import { createPeerHandler, type PeerRoute } from './peer-handler.js';
import { PeerClient } from './peer-client.js';
import { MIN_SECRET_LENGTH, NODE_ID_PATTERN, PEER_PREFIX, parseSessionInfo } from './peer-wire.js';

export interface ClusterMemberOptions {
  readonly store: OwnershipStore;
  /** Unique among running members: letters, digits and `-`, up to 63. */
  readonly nodeId: string;
  /** The URL other members reach this one at (its server, which mounts `peerHandler`). */
  readonly advertise: string;
  /** Shared by every member; authenticates member-to-member requests (never sent). At least 32 characters. */
  readonly secret: string;
  readonly lease?: LeaseKeeperOptions | undefined;
  /** Give up connecting to another member after this long. @default 2000 */
  readonly connectTimeoutMs?: number | undefined;
  /** Close the store with the member. @default true */
  readonly ownsStore?: boolean | undefined;
}

const OptionsSchema = z.object({
  nodeId: z.string().regex(NODE_ID_PATTERN, 'letters, digits and "-", 1–63, starting with a letter or digit'),
  advertise: z
    .string()
    .url()
    .refine((u) => /^https?:\/\//.test(u), 'an http:// or https:// URL'),
  secret: z.string().min(MIN_SECRET_LENGTH, `at least ${MIN_SECRET_LENGTH} characters`),
});

export interface ClusterMemberEvents {
  serving: (lease: string) => void;
  fenced: (lease: string) => void;
  lost: (lease: string) => void;
}

/** One member's counts, as the status page and metrics show them. */
export interface MemberStats {
  readonly member: string;
  readonly url: string;
  /** Undefined when the member did not answer. */
  readonly pools: Readonly<Record<string, PoolStats & { owned: number }>> | undefined;
}

export class ClusterMember extends EventEmitter<ClusterMemberEvents> {
  readonly nodeId: string;
  readonly advertise: string;
  readonly store: OwnershipStore;
  readonly peers: PeerClient;
  readonly #keeper: LeaseKeeper;
  readonly #pools = new Map<string, ClusterPool>();
  readonly #ownsStore: boolean;
  readonly #startedAt = new Date().toISOString();
  readonly #routes: PeerRoute[] = [];
  #closing: Promise<void> | undefined;
  /** `(req, res)` for requests under `/.cluster/v1/`: mount it on the server `advertise` names. */
  readonly peerHandler: (req: IncomingMessage, res: ServerResponse) => void;

  /** @throws {InvalidOptionsError} naming every invalid option */
  constructor(options: ClusterMemberOptions) {
    super();
    const valid = parseOrThrow(OptionsSchema, options, 'invalid cluster member options');
    this.nodeId = valid.nodeId;
    this.advertise = valid.advertise.replace(/\/+$/, '');
    this.store = options.store;
    this.#ownsStore = options.ownsStore ?? true;
    this.peers = new PeerClient({ member: this.nodeId, secret: options.secret, connectTimeoutMs: options.connectTimeoutMs });
    this.#keeper = new LeaseKeeper(options.store.leases, options.lease);
    this.#keeper.on('serving', (lease) => {
      this.store.announce({ member: this.nodeId, url: this.advertise, startedAt: this.#startedAt }, lease).catch(() => {}); // retried on the next new lease; the announcement only feeds listings
      this.emit('serving', lease);
    });
    this.#keeper.on('fenced', (lease) => this.emit('fenced', lease));
    this.#keeper.on('lost', (lease) => {
      for (const pool of this.#pools.values()) pool.dropOwned();
      this.emit('lost', lease);
    });
    const handler = createPeerHandler(this, options.secret, this.#routes);
    this.peerHandler = (req, res) => void handler(req, res);
  }

  /** Answer one more member-to-member route (the server adds its execution records). */
  addPeerRoute(route: PeerRoute): void {
    this.#routes.push(route);
  }

  /** serving (lease held and renewed), fenced (renewals failing) or none. */
  get leaseState(): 'none' | 'serving' | 'fenced' {
    return this.#keeper.state;
  }

  get serving(): boolean {
    return this.#keeper.serving;
  }

  /** Start taking and renewing the lease. Returns at once; `ready()` waits for the first lease. */
  start(): void {
    this.#keeper.start();
  }

  /** Resolves once the member holds a lease; rejects after `timeoutMs`. */
  ready(timeoutMs = 30_000): Promise<void> {
    if (this.#keeper.serving) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('serving', done);
        reject(new ClusterUnavailableError(`no lease from the store within ${timeoutMs} ms`, { details: { reason: 'store' } }));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.once('serving', done);
    });
  }

  /** Serve `pool` across the cluster. Its name must be the same on every member. */
  pool(pool: SessionPool): ClusterPool {
    if (this.#pools.has(pool.name)) throw new InvalidOptionsError(`the cluster member already serves a pool "${pool.name}"`);
    const clustered = new ClusterPool(this.#context(), pool);
    this.#pools.set(pool.name, clustered);
    return clustered;
  }

  /** Forget a pool (after closing it). */
  forget(name: string): void {
    this.#pools.delete(name);
  }

  get(name: string): ClusterPool | undefined {
    return this.#pools.get(name);
  }

  pools(): ClusterPool[] {
    return [...this.#pools.values()];
  }

  /** True for a request the peer handler answers. */
  static isPeerPath(pathname: string): boolean {
    return pathname.startsWith(PEER_PREFIX);
  }

  /** The members that hold a lease now. */
  members(): Promise<MemberRecord[]> {
    return this.store.members();
  }

  /** Allocated sessions of `pool` on every member; members that do not answer are left out. */
  async sessions(pool: string): Promise<{ sessions: ClusterSessionInfo[]; missing: string[] }> {
    const members = await this.members();
    const missing: string[] = [];
    const lists = await Promise.all(
      members.map(async (m): Promise<ClusterSessionInfo[]> => {
        if (m.member === this.nodeId) {
          return (this.#pools.get(pool)?.ownedSessions() ?? []).map((s) => ({ ...s, member: m.member }));
        }
        try {
          const { body } = await this.peers.json(m.url, {
            method: 'GET',
            path: `${PEER_PREFIX}pools/${encodeURIComponent(pool)}/sessions`,
            idleTimeoutMs: 5000,
          });
          return (body as unknown[]).map((s) => ({ ...parseSessionInfo(s), member: m.member }));
        } catch {
          missing.push(m.member);
          return [];
        }
      }),
    );
    return { sessions: lists.flat(), missing };
  }

  /** Every member's pool counts (this one's from memory). */
  async memberStats(): Promise<MemberStats[]> {
    const members = await this.members().catch(() => [] as MemberRecord[]);
    if (!members.some((m) => m.member === this.nodeId)) {
      members.push({ member: this.nodeId, url: this.advertise, startedAt: this.#startedAt });
    }
    return Promise.all(
      members.map(async (m): Promise<MemberStats> => {
        if (m.member === this.nodeId) return { member: m.member, url: m.url, pools: this.localStats() };
        try {
          const { body } = await this.peers.json(m.url, { method: 'GET', path: `${PEER_PREFIX}stats`, idleTimeoutMs: 5000 });
          return { member: m.member, url: m.url, pools: body as MemberStats['pools'] };
        } catch {
          return { member: m.member, url: m.url, pools: undefined };
        }
      }),
    );
  }

  /** This member's counts per pool. */
  localStats(): Record<string, PoolStats & { owned: number }> {
    const out: Record<string, PoolStats & { owned: number }> = {};
    for (const pool of this.#pools.values()) out[pool.name] = { ...pool.local.stats(), owned: pool.ownedCount };
    return out;
  }

  /**
   * Leave: stop renewing and revoke the lease (every key this member owned goes at once), close
   * the peer connections and, unless told otherwise, the store. Pools are closed by their owner
   * first, so their sessions end before their identifiers are freed. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#keeper.stop({ revoke: true });
      this.peers.close();
      if (this.#ownsStore) await this.store.close();
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #context(): MemberContext {
    return {
      nodeId: this.nodeId,
      advertise: this.advertise,
      store: this.store,
      peers: this.peers,
      claimLease: () => {
        const lease = this.#keeper.lease;
        if (this.#closing !== undefined || lease === undefined || !this.#keeper.serving) {
          throw new ClusterUnavailableError(
            this.#closing !== undefined
              ? 'this member is leaving the cluster'
              : 'this member holds no live lease (the ownership store is out of reach); retry shortly',
            { details: { reason: 'lease' } },
          );
        }
        return lease;
      },
      currentLease: () => this.#keeper.lease,
      serving: () => this.#keeper.serving,
      lostHere: (lease) => this.#keeper.lostHere(lease),
    };
  }
}
