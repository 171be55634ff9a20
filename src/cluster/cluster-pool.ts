/**
 * One pool across the cluster: a local `SessionPool` plus identifier ownership in the store.
 * `acquire(identifier)` answers with the same session API whoever owns the identifier:
 *
 * - this member owns it and holds its lease: the local session (guarded, see OwnedSession);
 * - nobody owns it: one claim transaction under this member's lease, then a local Ready session;
 *   of any number of racing members exactly one wins, the others get the winner's session;
 * - another member owns it: a RemoteSession forwarding to the owner with the ownership epoch.
 *
 * Warm sessions stay on their own host: there is no global ready list. When a local session ends
 * (cooldown, stop, crash) its key is released, so the identifier may be claimed anew anywhere.
 */

import type { AcquireOptions, SessionPool } from '../session-pool.js';
import type { SessionDestroyedEvent } from '../events.js';
import { ClusterUnavailableError, SessionNotFoundError } from '../errors.js';
import { assertIdentifier } from '../identifier.js';
import type { SessionInfo } from '../session-types.js';
import { OwnedSession } from './owned-session.js';
import type { Ownership, OwnershipStore } from './ownership-store.js';
import type { PeerClient } from './peer-client.js';
import { RemoteSession } from './remote-session.js';
import type { SessionApi } from './session-api.js';

/** What a ClusterPool needs from its member. */
export interface MemberContext {
  readonly nodeId: string;
  readonly advertise: string;
  readonly store: OwnershipStore;
  readonly peers: PeerClient;
  /** The lease to claim under; throws ClusterUnavailableError while none is provably alive. */
  claimLease(): string;
  /** The lease currently held (serving or fenced), for recognising this incarnation's own keys. */
  currentLease(): string | undefined;
  /** True while owned sessions may be served. */
  serving(): boolean;
  /** Whether this process held `lease` and lost it (its sessions are gone). */
  lostHere(lease: string): boolean;
}

/** A session in a cluster-wide listing, with the member that holds it. */
export type ClusterSessionInfo = SessionInfo & { readonly member: string };

export class ClusterPool {
  readonly local: SessionPool;
  readonly #member: MemberContext;
  /** Identifiers this member owns, with the epoch it claimed them at. */
  readonly #owned = new Map<string, Ownership>();
  readonly #acquiring = new Map<string, Promise<SessionApi>>();
  readonly #background = new Set<Promise<unknown>>();
  readonly #onDestroyed = (event: SessionDestroyedEvent): void => {
    if (event.identifier !== undefined) this.#release(event.identifier);
  };

  /** @internal Made by ClusterMember.pool(). */
  constructor(member: MemberContext, local: SessionPool) {
    this.#member = member;
    this.local = local;
    local.on('sessionDestroyed', this.#onDestroyed);
  }

  get name(): string {
    return this.local.name;
  }

  /** How many identifiers this member owns in this pool. */
  get ownedCount(): number {
    return this.#owned.size;
  }

  /**
   * The session of `identifier`, wherever it lives; claims it here when nobody owns it.
   * @throws {ClusterUnavailableError} the store or the owner is out of reach, or this member holds no lease
   * @throws whatever `SessionPool.acquire` throws for a local claim
   */
  acquire(identifier: string, options: AcquireOptions = {}): Promise<SessionApi> {
    try {
      assertIdentifier(identifier);
    } catch (error) {
      return Promise.reject(error);
    }
    const owned = this.#owned.get(identifier);
    const local = owned === undefined ? undefined : this.local.get(identifier);
    if (owned !== undefined && local !== undefined) {
      try {
        this.#guard(identifier, owned.epoch);
      } catch (error) {
        return Promise.reject(error);
      }
      return Promise.resolve(this.#wrap(local, identifier, owned.epoch));
    }
    const inFlight = this.#acquiring.get(identifier);
    if (inFlight !== undefined) return inFlight;
    const acquiring = this.#acquireSlow(identifier, options);
    this.#acquiring.set(identifier, acquiring);
    const forget = (): void => {
      this.#acquiring.delete(identifier);
    };
    acquiring.then(forget, forget);
    return acquiring;
  }

  /** The session of `identifier` if someone owns it (remote ones with a fresh snapshot); never creates. */
  async get(identifier: string): Promise<SessionApi | undefined> {
    assertIdentifier(identifier);
    const owned = this.#owned.get(identifier);
    const local = this.local.get(identifier);
    if (owned !== undefined && local !== undefined) {
      this.#guard(identifier, owned.epoch);
      return this.#wrap(local, identifier, owned.epoch);
    }
    const owner = await this.#member.store.lookup(this.#key(identifier));
    if (owner === undefined || this.#isMine(owner)) return undefined;
    const remote = new RemoteSession(this.#member.peers, this.name, identifier, owner);
    await remote.refresh();
    return remote;
  }

  /** Who owns `identifier` now, per the store. */
  owner(identifier: string): Promise<Ownership | undefined> {
    assertIdentifier(identifier);
    return this.#member.store.lookup(this.#key(identifier));
  }

  /** Allocated sessions this member owns (what it reports to the others' listings). */
  ownedSessions(): SessionInfo[] {
    return this.local.sessions().filter((s) => {
      const owned = s.identifier === undefined ? undefined : this.#owned.get(s.identifier);
      return owned !== undefined && s.state === 'Allocated';
    });
  }

  /**
   * @internal The local session a peer asks for, only while this member owns it at that epoch
   * and may serve it.
   */
  forPeer(identifier: string, epoch: string): SessionApi {
    const owned = this.#owned.get(identifier);
    const local = this.local.get(identifier);
    if (owned === undefined || owned.epoch !== epoch || local === undefined) {
      throw new ClusterUnavailableError(`this member does not own the identifier at epoch ${epoch} (any more)`, {
        details: { reason: 'notOwner' },
      });
    }
    this.#guard(identifier, epoch);
    return this.#wrap(local, identifier, epoch);
  }

  /** @internal The lease is lost: drop every owned session (another member may claim them soon). */
  dropOwned(): void {
    const identifiers = [...this.#owned.keys()];
    this.#owned.clear();
    for (const identifier of identifiers) {
      const session = this.local.get(identifier);
      if (session !== undefined) this.#track(session.stop().catch(() => {}));
    }
  }

  /** Stop serving: close the local pool (its sessions end and their keys are released). */
  async close(): Promise<void> {
    await this.local.close();
    this.local.off('sessionDestroyed', this.#onDestroyed);
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
  }

  async #acquireSlow(identifier: string, options: AcquireOptions): Promise<SessionApi> {
    const key = this.#key(identifier);
    const { store } = this.#member;
    // Existing identifiers are the common case away from their owner: a read is cheaper than a claim.
    let owner = await store.lookup(key);
    for (let attempt = 0; attempt < 3; attempt += 1) {
      if (owner === undefined) {
        const lease = this.#member.claimLease();
        const claim = await store.claim(key, { member: this.#member.nodeId, url: this.#member.advertise }, lease);
        if (claim.won) return this.#allocate(identifier, claim.owner, options);
        owner = claim.owner;
      }
      if (owner.member === this.#member.nodeId && this.#member.lostHere(owner.lease)) {
        // A key this process left behind when it lost that lease; its session is already gone.
        await store.release(key, owner.epoch);
        owner = undefined;
        continue;
      }
      if (!this.#isMine(owner)) {
        if (owner.member === this.#member.nodeId) {
          throw new ClusterUnavailableError('an earlier run of this member still holds the identifier until its lease expires', {
            details: { reason: 'owner' },
          });
        }
        return new RemoteSession(this.#member.peers, this.name, identifier, owner);
      }
      // Our own key without a live local session: its release is on the way. Finish it, claim anew.
      const local = this.local.get(identifier);
      const owned = this.#owned.get(identifier);
      if (local !== undefined && owned?.epoch === owner.epoch) {
        this.#guard(identifier, owner.epoch);
        return this.#wrap(local, identifier, owner.epoch);
      }
      if (owned?.epoch === owner.epoch) this.#owned.delete(identifier);
      await store.release(key, owner.epoch);
      owner = undefined;
    }
    throw new ClusterUnavailableError('the identifier changed owners too often to settle; retry', {
      details: { reason: 'owner' },
    });
  }

  async #allocate(identifier: string, owner: Ownership, options: AcquireOptions): Promise<SessionApi> {
    this.#owned.set(identifier, owner);
    let session: SessionApi;
    try {
      session = await this.local.acquire(identifier, options);
    } catch (error) {
      if (this.#owned.get(identifier)?.epoch === owner.epoch) this.#owned.delete(identifier);
      this.#track(this.#member.store.release(this.#key(identifier), owner.epoch).catch(() => {}));
      throw error;
    }
    // The lease may have been lost while the session was being allocated.
    if (this.#owned.get(identifier)?.epoch !== owner.epoch) {
      this.#track(session.stop().catch(() => {}));
      throw new ClusterUnavailableError('this member lost its lease while allocating the session', {
        details: { reason: 'lease' },
      });
    }
    return this.#wrap(session, identifier, owner.epoch);
  }

  #wrap(session: SessionApi, identifier: string, epoch: string): SessionApi {
    return new OwnedSession(session, () => this.#guard(identifier, epoch));
  }

  /** Throws unless this member still owns `identifier` at `epoch` under a provably live lease. */
  #guard(identifier: string, epoch: string): void {
    if (this.#owned.get(identifier)?.epoch !== epoch) {
      // As for a local session that ended: the handle is dead, acquire() gives the current one.
      throw new SessionNotFoundError('the session ended (this member no longer owns its identifier)');
    }
    if (!this.#member.serving()) {
      throw new ClusterUnavailableError('this member cannot renew its lease, so it stopped serving its sessions', {
        details: { reason: 'lease' },
      });
    }
  }

  #isMine(owner: Ownership): boolean {
    return owner.member === this.#member.nodeId && owner.lease === this.#member.currentLease();
  }

  #release(identifier: string): void {
    const owned = this.#owned.get(identifier);
    if (owned === undefined || this.local.get(identifier) !== undefined) return;
    this.#owned.delete(identifier);
    // Best effort: if it fails the key goes with the lease, or the next claim here clears it.
    this.#track(this.#member.store.release(this.#key(identifier), owned.epoch).catch(() => {}));
  }

  #key(identifier: string): string {
    return `${this.name}/${identifier}`;
  }

  #track(work: Promise<unknown>): void {
    this.#background.add(work);
    void work.finally(() => this.#background.delete(work));
  }
}
