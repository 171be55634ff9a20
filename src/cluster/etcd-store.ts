/**
 * `OwnershipStore` on etcd v3 through the `etcd3` npm client (Microsoft's, the most used Node
 * client; gRPC underneath). Everything lives under one key prefix:
 *
 *   <prefix>owners/<pool>/<identifier>   {member, url}   under the owner's lease (claims)
 *   <prefix>members/<node-id>            {member, url}   under the member's lease
 *   <prefix>pools/<name>                 definition JSON (persistent)
 *
 * A claim is one transaction, "create the key only if its create revision is 0 (absent), else read
 * it", so exactly one of any number of racing claims wins; the winner's epoch is the revision of
 * that write. Every call runs under a deadline: etcd answers a request it cannot commit (quorum
 * lost) only after seconds, and the cluster must fail fast instead.
 */

import { ConsecutiveBreaker, circuitBreaker, handleWhen } from 'cockatiel';
import { Etcd3, type IKeyValue, isRecoverableError, type Namespace, type Watcher } from 'etcd3';

import { ClusterUnavailableError, SandpoolError } from '../errors.js';
import type {
  ClaimResult,
  DocumentChange,
  LeaseOperations,
  MemberRecord,
  OwnerRecord,
  Ownership,
  OwnershipStore,
} from './ownership-store.js';

export interface EtcdStoreOptions {
  /** Client URLs of the etcd members, e.g. `http://10.0.0.1:2379`. */
  readonly hosts: readonly string[];
  /** Key prefix; several clusters can share one etcd. @default 'sandpool/' */
  readonly prefix?: string | undefined;
  /** Deadline of one store call (claims, lookups, keep-alives). @default 2000 */
  readonly callTimeoutMs?: number | undefined;
  /** etcd user and password, when etcd has authentication on. */
  readonly auth?: { readonly username: string; readonly password: string } | undefined;
}

const OWNERS = 'owners/';
const MEMBERS = 'members/';

/**
 * An etcd host that failed three calls in a row is skipped, and tried again with one call after
 * this long. etcd3's default is 5 s: a member whose link had just healed went on refusing the hosts
 * that answered again for that long, and every call failed if the one host it could still reach
 * went away meanwhile.
 */
const HOST_RETRY_AFTER_MS = 1000;

/** The longest wait before a broken watch stream is opened again. */
const WATCH_RECONNECT_MAX_MS = 2000;

/**
 * Delays between attempts to reopen a broken watch stream: 100 ms doubling up to
 * WATCH_RECONNECT_MAX_MS, with jitter. etcd3's default grows to 30 s, which leaves the pool
 * definitions unwatched that long after an etcd member comes back, and its timer (not unref'd, and
 * not cleared by close()) keeps a member that is shutting down alive until it fires.
 */
interface WatchBackoff {
  readonly duration: number;
  next(): WatchBackoff;
}
function watchBackoff(baseMs = 100): WatchBackoff {
  return {
    duration: Math.round(baseMs * (0.5 + Math.random() / 2)),
    next: () => watchBackoff(Math.min(baseMs * 2, WATCH_RECONNECT_MAX_MS)),
  };
}

/** Run a store call under a deadline; any failure becomes a ClusterUnavailableError (reason `store`). */
async function withDeadline<T>(what: string, timeoutMs: number, work: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new ClusterUnavailableError(`the ownership store did not answer ${what} within ${timeoutMs} ms`, {
            details: { reason: 'store' },
          }),
        ),
      timeoutMs,
    );
    timer.unref();
  });
  try {
    return await Promise.race([work(), expired]);
  } catch (error) {
    if (SandpoolError.is(error)) throw error;
    throw new ClusterUnavailableError(`the ownership store failed ${what}: ${(error as Error)?.message ?? String(error)}`, {
      details: { reason: 'store' },
      cause: error,
    });
  } finally {
    clearTimeout(timer);
  }
}

function ownershipOf(kv: IKeyValue): Ownership {
  const record = JSON.parse(kv.value.toString('utf8')) as OwnerRecord;
  return { member: record.member, url: record.url, epoch: kv.create_revision, lease: kv.lease };
}

export class EtcdOwnershipStore implements OwnershipStore {
  readonly #client: Etcd3;
  readonly #ns: Namespace;
  readonly #timeoutMs: number;
  readonly #watchers = new Set<Watcher>();
  readonly leases: LeaseOperations;

  constructor(options: EtcdStoreOptions) {
    if (options.hosts.length === 0) throw new ClusterUnavailableError('no etcd host given', { details: { reason: 'store' } });
    this.#timeoutMs = options.callTimeoutMs ?? 2000;
    const timeout = this.#timeoutMs;
    this.#client = new Etcd3({
      hosts: [...options.hosts],
      dialTimeout: timeout,
      faultHandling: {
        host: () =>
          circuitBreaker(handleWhen(isRecoverableError), {
            halfOpenAfter: HOST_RETRY_AFTER_MS,
            breaker: new ConsecutiveBreaker(3),
          }),
        watchBackoff: watchBackoff(),
      },
      ...(options.auth === undefined ? {} : { auth: { username: options.auth.username, password: options.auth.password } }),
      // Unary calls carry a gRPC deadline so nothing lingers after withDeadline gave up; streams
      // (watches, keep-alives) are long-lived or bounded by withDeadline alone.
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeout }),
    });
    this.#ns = this.#client.namespace(options.prefix ?? 'sandpool/');
    const leaseClient = this.#ns.leaseClient;
    this.leases = {
      grant: (ttlSeconds) =>
        withDeadline('a lease grant', timeout, async () => String((await leaseClient.leaseGrant({ TTL: ttlSeconds })).ID)),
      keepAlive: (lease) =>
        withDeadline('a lease keep-alive', timeout, async () => {
          const stream = await leaseClient.leaseKeepAlive({ deadline: Date.now() + timeout });
          try {
            const answer = await new Promise<{ TTL: string }>((resolve, reject) => {
              stream.on('data', resolve);
              stream.on('error', reject);
              stream.write({ ID: lease });
            });
            return Number(answer.TTL) > 0 ? 'alive' : 'expired';
          } finally {
            stream.end();
          }
        }),
      revoke: (lease) =>
        withDeadline('a lease revoke', timeout, async () => {
          await leaseClient.leaseRevoke({ ID: lease }).catch((error: unknown) => {
            // An unknown lease is already gone: that is what revoking wanted.
            if (!/lease not found/i.test((error as Error)?.message ?? '')) throw error;
          });
        }),
    };
  }

  async claim(key: string, record: OwnerRecord, lease: string): Promise<ClaimResult> {
    const full = OWNERS + key;
    return withDeadline('a claim', this.#timeoutMs, async () => {
      const result = await this.#ns
        .if(full, 'Create', '==', 0)
        .then(this.#ns.put(full).value(JSON.stringify(record)).lease(lease))
        .else(this.#ns.get(full))
        .commit();
      if (result.succeeded) {
        return { won: true, owner: { ...record, epoch: result.header.revision, lease } };
      }
      const kv = result.responses[0]?.response_range.kvs[0];
      // Deleted between the compare and the read cannot happen inside one transaction; guard anyway.
      if (kv === undefined) throw new Error('the claim found a key and then none');
      return { won: false, owner: ownershipOf(kv) };
    });
  }

  async lookup(key: string): Promise<Ownership | undefined> {
    return withDeadline('a lookup', this.#timeoutMs, async () => {
      const kv = (await this.#ns.get(OWNERS + key).exec()).kvs[0];
      return kv === undefined ? undefined : ownershipOf(kv);
    });
  }

  async release(key: string, epoch: string): Promise<void> {
    const full = OWNERS + key;
    await withDeadline('a release', this.#timeoutMs, () =>
      this.#ns.if(full, 'Create', '==', epoch).then(this.#ns.delete().key(full)).commit(),
    );
  }

  async announce(record: MemberRecord, lease: string): Promise<void> {
    await withDeadline('a member announcement', this.#timeoutMs, () =>
      this.#ns
        .put(MEMBERS + record.member)
        .value(JSON.stringify(record))
        .lease(lease)
        .exec(),
    );
  }

  async members(): Promise<MemberRecord[]> {
    return withDeadline('a member listing', this.#timeoutMs, async () => {
      const all = await this.#ns.getAll().prefix(MEMBERS).strings();
      return Object.values(all).map((value) => JSON.parse(value) as MemberRecord);
    });
  }

  async putDocument(folder: string, name: string, value: string): Promise<string> {
    return withDeadline('a write', this.#timeoutMs, async () => {
      const result = await this.#ns.put(`${folder}/${name}`).value(value).exec();
      return result.header.revision;
    });
  }

  async deleteDocument(folder: string, name: string): Promise<string> {
    return withDeadline('a delete', this.#timeoutMs, async () => {
      const result = await this.#ns.delete().key(`${folder}/${name}`).exec();
      return result.header.revision;
    });
  }

  async watchDocuments(folder: string, onChange: (change: DocumentChange) => void): Promise<() => Promise<void>> {
    const prefix = `${folder}/`;
    const initial = await withDeadline('a listing', this.#timeoutMs, () => this.#ns.getAll().prefix(prefix).exec());
    const nameOf = (kv: IKeyValue): string => kv.key.toString('utf8').slice(prefix.length);
    for (const kv of initial.kvs) {
      onChange({ type: 'put', name: nameOf(kv), value: kv.value.toString('utf8'), revision: kv.mod_revision });
    }
    const next = String(BigInt(initial.header.revision) + 1n);
    // etcd3 re-establishes a broken watch by itself and resumes after the last revision it saw.
    const watcher = await this.#ns.watch().prefix(prefix).startRevision(next).create();
    this.#watchers.add(watcher);
    watcher.on('put', (kv) =>
      onChange({ type: 'put', name: nameOf(kv), value: kv.value.toString('utf8'), revision: kv.mod_revision }),
    );
    watcher.on('delete', (kv) => onChange({ type: 'delete', name: nameOf(kv), revision: kv.mod_revision }));
    // Errors are retried inside etcd3; an unlistened 'error' would take the process down.
    watcher.on('error', () => {});
    return async () => {
      this.#watchers.delete(watcher);
      await watcher.cancel().catch(() => {});
    };
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#watchers].map((w) => w.cancel()));
    this.#watchers.clear();
    this.#client.close();
  }
}
