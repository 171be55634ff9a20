/**
 * The small contract cluster mode needs from a distributed store. `EtcdOwnershipStore` implements
 * it on etcd; the cluster code above it knows nothing of etcd. Every operation either settles
 * within the store's deadline or rejects with `ClusterUnavailableError`: a store outage never
 * hangs a caller.
 */

/** What an owner writes under an identifier's key. */
export interface OwnerRecord {
  /** The owning member's node id. */
  readonly member: string;
  /** Where other members reach it (`--advertise`). */
  readonly url: string;
}

/** An identifier's current owner, as the store holds it. */
export interface Ownership extends OwnerRecord {
  /**
   * The ownership epoch: the key's create revision, unique over the store's history. It changes
   * whenever the identifier is claimed anew, so a request that carries an old one is refused.
   */
  readonly epoch: string;
  /** The lease the key lives under (one per member incarnation). */
  readonly lease: string;
}

export type ClaimResult = { readonly won: true; readonly owner: Ownership } | { readonly won: false; readonly owner: Ownership };

/** A member as it announces itself (under its lease, so it disappears with it). */
export interface MemberRecord {
  readonly member: string;
  readonly url: string;
  readonly startedAt: string;
}

/** A change to a watched document (pool definitions). */
export type DocumentChange =
  | { readonly type: 'put'; readonly name: string; readonly value: string; readonly revision: string }
  | { readonly type: 'delete'; readonly name: string; readonly revision: string };

/** The lease operations the lease keeper drives (ids are decimal strings). */
export interface LeaseOperations {
  grant(ttlSeconds: number): Promise<string>;
  /** `alive` renewed it; `expired` the store no longer knows it. Rejects when the store is out of reach. */
  keepAlive(lease: string): Promise<'alive' | 'expired'>;
  /** Best effort: the keys under it vanish at once. */
  revoke(lease: string): Promise<void>;
}

export interface OwnershipStore {
  readonly leases: LeaseOperations;
  /**
   * Create `key` under `lease` only if it does not exist (one transaction); otherwise report the
   * record that is there. Exactly one of any number of concurrent claims wins.
   */
  claim(key: string, record: OwnerRecord, lease: string): Promise<ClaimResult>;
  lookup(key: string): Promise<Ownership | undefined>;
  /** Delete `key` only while it still has this epoch (a newer owner's key is never touched). */
  release(key: string, epoch: string): Promise<void>;
  /** Announce this member under its lease. */
  announce(record: MemberRecord, lease: string): Promise<void>;
  members(): Promise<MemberRecord[]>;
  /** Persistent documents under a folder (pool definitions): not under any lease. */
  putDocument(folder: string, name: string, value: string): Promise<string>;
  deleteDocument(folder: string, name: string): Promise<string>;
  /**
   * Every document of `folder` now, then each change after that, in order, until the returned
   * function is called. Reconnects by itself across store outages.
   */
  watchDocuments(folder: string, onChange: (change: DocumentChange) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}
