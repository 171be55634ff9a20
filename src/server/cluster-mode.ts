/**
 * The server in cluster mode (`sandpool serve --etcd …`): a thin layer that plugs a ClusterMember
 * into the server. Every pool the registry holds is served as a ClusterPool; handlers acquire
 * through it, so any member answers for any identifier. Pool definitions are stored in etcd and
 * every member applies them as they change; member-to-member requests (under `/.cluster/v1/`) are
 * answered here; execution ids carry the member that holds their record.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';

import { Gauge } from 'prom-client';
import { z } from 'zod';

import type { ClusterMember } from '../cluster/cluster-member.js';
import type { ClusterPool } from '../cluster/cluster-pool.js';
import type { DocumentChange } from '../cluster/ownership-store.js';
import type { PeerRoute } from '../cluster/peer-handler.js';
import { sendJson as sendPeerJson } from '../cluster/peer-handler.js';
import { PEER_PREFIX, executionFromWire, executionToWire } from '../cluster/peer-wire.js';
import type { SessionApi } from '../cluster/session-api.js';
import { ClusterUnavailableError } from '../errors.js';
import type { AcquireOptions, SessionPool } from '../session-pool.js';
import type { SessionInfo } from '../session-types.js';
import { ExecutionStore, type ExecutionRecord } from './execution-store.js';
import type { Logger } from './logging.js';
import type { ServerMetrics } from './metrics.js';
import { UPDATABLE, scaleSettings, withoutScale } from './pool-handlers.js';
import type { DefinitionStore, PoolDefinition, PoolRegistry } from './pool-registry.js';
import type { MemberCounts } from './status-page.js';

const DEFINITIONS = 'pools';
/** `<node-id>~<rest>`: an execution id minted by a member. */
const MEMBER_ID = /^([A-Za-z0-9][A-Za-z0-9-]{0,62})~/;

const StoredDefinitionSchema = z.object({
  name: z.string().min(1),
  backend: z.string().min(1),
  properties: z.record(z.string(), z.unknown()),
});

/** The scale-only change between two stored definitions, or undefined when anything else differs. */
function scaleUpdate(from: Record<string, unknown>, to: Record<string, unknown>): Record<string, unknown> | undefined {
  if (withoutScale(from) !== withoutScale(to)) return undefined;
  const before = scaleSettings(from);
  const after = scaleSettings(to);
  const update: Record<string, unknown> = {};
  for (const key of UPDATABLE) if (after[key] !== undefined && after[key] !== before[key]) update[key] = after[key];
  return update;
}

export class ServerCluster {
  readonly member: ClusterMember;
  readonly #byPool = new WeakMap<SessionPool, ClusterPool>();
  #stopWatching: (() => Promise<void>) | undefined;
  #executions: ExecutionStore | undefined;
  #closing = false;

  constructor(member: ClusterMember) {
    this.member = member;
  }

  /** Pool definitions go to etcd instead of the data dir. */
  readonly definitions: DefinitionStore = {
    save: async (definition) => {
      await this.member.store.putDocument(DEFINITIONS, definition.name, JSON.stringify(definition));
    },
    remove: async (name) => {
      await this.member.store.deleteDocument(DEFINITIONS, name);
    },
  };

  /** Member-to-member routes the server adds: execution records held here. */
  peerRoutes(): PeerRoute[] {
    return [
      {
        method: 'GET',
        path: /^executions\/([^/]+)\/([^/]+)$/,
        handle: async (match, url, _req, res) => {
          const key = ExecutionStore.key(decodeURIComponent(match[1]!), decodeURIComponent(match[2]!));
          const record = this.#executions?.get(key, url.searchParams.get('identifier') ?? undefined);
          if (record === undefined) {
            sendPeerJson(res, 404, { error: { code: 'NotFound', message: 'no such execution here' } });
            return;
          }
          sendPeerJson(res, 200, record.state === 'done' ? { ...record, result: executionToWire(record.result) } : record);
        },
      },
    ];
  }

  /** Wire the member to the server: pools as they come and go, metrics, the stored definitions. */
  async attach(registry: PoolRegistry, executions: ExecutionStore, metrics: ServerMetrics, log: Logger): Promise<void> {
    this.#executions = executions;
    this.#registerMetrics(metrics);
    this.member.on('serving', () => log({ level: 'info', msg: 'cluster lease held', node: this.member.nodeId }));
    this.member.on('fenced', () =>
      log({ level: 'warn', msg: 'cluster lease not renewed: stopped serving owned sessions', node: this.member.nodeId }),
    );
    this.member.on('lost', () =>
      log({ level: 'error', msg: 'cluster lease lost: owned sessions dropped, taking a new lease', node: this.member.nodeId }),
    );
    this.member.start();
    // Definitions: what etcd holds now, then every change, applied in order per pool.
    while (!this.#closing) {
      // The definitions etcd holds now are applied before the server reports ready; later changes
      // are applied as they come, in order per pool.
      const initial: Promise<void>[] = [];
      let loading = true;
      try {
        this.#stopWatching = await this.member.store.watchDocuments(DEFINITIONS, (change) => {
          const applied = this.#apply(registry, change, log);
          if (loading) initial.push(applied);
        });
        loading = false;
        await Promise.all(initial);
        if (this.#closing) await this.#stopWatching();
        return;
      } catch (error) {
        log({ level: 'warn', msg: 'waiting for etcd to load pool definitions', error: (error as Error).message });
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  #apply(registry: PoolRegistry, change: DocumentChange, log: Logger): Promise<void> {
    let definition: PoolDefinition | undefined;
    if (change.type === 'put') {
      let parsed: ReturnType<typeof StoredDefinitionSchema.safeParse> | undefined;
      try {
        parsed = StoredDefinitionSchema.safeParse(JSON.parse(change.value));
      } catch {
        parsed = undefined;
      }
      if (parsed?.success !== true || parsed.data.name !== change.name) {
        log({ level: 'error', msg: 'ignoring an invalid stored pool definition', pool: change.name });
        return Promise.resolve();
      }
      definition = parsed.data;
    }
    return registry.applyStored(change.name, definition, scaleUpdate).catch((error: unknown) => {
      log({
        level: 'error',
        msg: 'could not apply a stored pool definition',
        pool: change.name,
        error: (error as Error).message,
      });
    });
  }

  poolAdded(pool: SessionPool): void {
    if (this.member.get(pool.name) !== undefined) this.member.forget(pool.name);
    this.#byPool.set(pool, this.member.pool(pool));
  }

  poolRemoved(pool: SessionPool): void {
    const clustered = this.#byPool.get(pool);
    if (clustered !== undefined && this.member.get(pool.name) === clustered) this.member.forget(pool.name);
    this.#byPool.delete(pool);
  }

  #clustered(pool: SessionPool): ClusterPool {
    const clustered = this.#byPool.get(pool);
    if (clustered === undefined) throw new ClusterUnavailableError(`pool "${pool.name}" is not served by the cluster yet`);
    return clustered;
  }

  acquire(pool: SessionPool, identifier: string, options: AcquireOptions): Promise<SessionApi> {
    return this.#clustered(pool).acquire(identifier, options);
  }

  get(pool: SessionPool, identifier: string): Promise<SessionApi | undefined> {
    return this.#clustered(pool).get(identifier);
  }

  /** Allocated sessions of the pool on every member. */
  async sessions(pool: SessionPool): Promise<SessionInfo[]> {
    return (await this.member.sessions(pool.name)).sessions;
  }

  /** Every member's counts per pool, for the status page. */
  readonly memberCounts = async (): Promise<MemberCounts> =>
    (await this.member.memberStats()).map((m) => ({
      member: m.member,
      url: m.url,
      pools:
        m.pools === undefined
          ? undefined
          : Object.fromEntries(
              Object.entries(m.pools).map(([name, p]) => [
                name,
                { ready: p.ready, allocated: p.allocated, pending: p.pending, owned: p.owned },
              ]),
            ),
    }));

  /** An execution id that names this member (so a GET reaching another member is routed here). */
  executionId(id: string): string {
    return MEMBER_ID.test(id) ? id : `${this.member.nodeId}~${id}`;
  }

  /** The record of an execution another member holds, or undefined. */
  async remoteExecution(pool: string, id: string, identifier: string | undefined): Promise<ExecutionRecord | undefined> {
    const owner = MEMBER_ID.exec(id)?.[1];
    if (owner === undefined || owner === this.member.nodeId) return undefined;
    const target = (await this.member.members()).find((m) => m.member === owner);
    if (target === undefined) return undefined;
    const query = new URLSearchParams(identifier === undefined ? {} : { identifier });
    const response = await this.member.peers.send(target.url, {
      method: 'GET',
      path: `${PEER_PREFIX}executions/${encodeURIComponent(pool)}/${encodeURIComponent(id)}?${query.toString()}`,
      idleTimeoutMs: 5000,
    });
    const chunks: Buffer[] = [];
    for await (const chunk of response) chunks.push(chunk as Buffer);
    if (response.statusCode !== 200) return undefined;
    const record = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ExecutionRecord & { result?: unknown };
    return record.state === 'done' ? { ...record, result: executionFromWire(record.result) } : record;
  }

  /** Member requests: answered before any route, authentication or audit of the public API. */
  handlePeer(req: IncomingMessage, res: ServerResponse): boolean {
    const path = req.url ?? '';
    if (!path.startsWith(PEER_PREFIX)) return false;
    this.member.peerHandler(req, res);
    return true;
  }

  /** Stop waiting for the store (a server closing while etcd is out of reach). */
  abandon(): void {
    this.#closing = true;
  }

  async close(): Promise<void> {
    this.#closing = true;
    await this.#stopWatching?.().catch(() => {});
    await this.member.close();
  }

  #registerMetrics(metrics: ServerMetrics): void {
    const member = this.member;
    new Gauge({
      name: 'sandpool_cluster_lease_serving',
      help: 'Whether this member holds a live lease and serves its sessions (1) or not (0).',
      registers: [metrics.registry],
      collect() {
        this.set(member.serving ? 1 : 0);
      },
    });
    new Gauge({
      name: 'sandpool_cluster_owned_identifiers',
      help: 'Identifiers this member owns, per pool.',
      labelNames: ['pool'],
      registers: [metrics.registry],
      collect() {
        this.reset();
        for (const pool of member.pools()) this.set({ pool: pool.name }, pool.ownedCount);
      },
    });
  }
}
