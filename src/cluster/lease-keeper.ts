/**
 * One lease per member incarnation, kept alive on our own timer. The member may serve its sessions
 * only while it can prove the lease is alive: etcd expires a lease TTL after the last keep-alive
 * it *received*, which is never earlier than when we *sent* it, so "sent + TTL" is a lower bound of
 * the expiry that needs no clock agreement between hosts. We stop serving (fence) a margin before
 * that bound, and treat the lease as lost at the bound itself. The client library's own lost-lease
 * event is not used: it fires seconds after the lease is gone (microsoft/etcd3#110).
 *
 *   serving ──(no renewal for TTL − margin)──▶ fenced ──(renewed: same lease)──▶ serving
 *                                               │
 *                                               └─(TTL since the last renewal, or the store says
 *                                                  expired)──▶ lost ──(new grant)──▶ serving
 *
 * All times are monotonic (`performance.now()`), so a wall-clock jump changes nothing.
 */

import { EventEmitter } from 'eventemitter3';

import type { LeaseOperations } from './ownership-store.js';

export interface LeaseKeeperOptions {
  /** Lease time to live. @default 10 */
  readonly ttlSeconds?: number | undefined;
  /** Keep-alive period. @default TTL / 4 */
  readonly renewEveryMs?: number | undefined;
  /** Stop serving this long before the lease can expire. @default 30 % of the TTL */
  readonly fenceMarginMs?: number | undefined;
}

export type LeaseState = 'none' | 'serving' | 'fenced';

export interface LeaseKeeperEvents {
  /** A lease is held and renewed (a new one, or the same one again after a fence). */
  serving: (lease: string) => void;
  /** No renewal for TTL − margin: stop answering for owned sessions. */
  fenced: (lease: string) => void;
  /** The lease may be gone: every session owned under it must be dropped. */
  lost: (lease: string) => void;
}

export class LeaseKeeper extends EventEmitter<LeaseKeeperEvents> {
  readonly #ops: LeaseOperations;
  readonly ttlMs: number;
  readonly #ttlSeconds: number;
  readonly #renewEveryMs: number;
  readonly #marginMs: number;
  #state: LeaseState = 'none';
  #lease: string | undefined;
  /** When the last successful grant or keep-alive was *sent*. */
  #renewedAt = 0;
  #tickTimer: NodeJS.Timeout | undefined;
  #fenceTimer: NodeJS.Timeout | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  #stopped = false;
  #running = false;
  /** A keep-alive or grant is awaiting its answer. */
  #inFlight = false;
  /** Bumped when a lease is lost: an answer that arrives for an older lease is ignored. */
  #generation = 0;
  /** Leases this process lost and has not managed to revoke yet (retried on every tick). */
  readonly #lostLeases = new Set<string>();

  constructor(ops: LeaseOperations, options: LeaseKeeperOptions = {}) {
    super();
    this.#ops = ops;
    this.#ttlSeconds = options.ttlSeconds ?? 10;
    this.ttlMs = this.#ttlSeconds * 1000;
    this.#renewEveryMs = options.renewEveryMs ?? this.ttlMs / 4;
    this.#marginMs = options.fenceMarginMs ?? this.ttlMs * 0.3;
    if (this.#marginMs >= this.ttlMs - this.#renewEveryMs) {
      throw new RangeError('the fence margin must leave room for at least one keep-alive within the TTL');
    }
  }

  get state(): LeaseState {
    return this.#state;
  }

  /** The lease id while one is held (serving or fenced). */
  get lease(): string | undefined {
    return this.#state === 'none' ? undefined : this.#lease;
  }

  /**
   * Whether `lease` is one this process held and lost: its sessions are gone, so keys still under
   * it (the store outlived our timer, or the revoke has not gone through) may be deleted by us.
   */
  lostHere(lease: string): boolean {
    return this.#lostLeases.has(lease);
  }

  /** True while sessions owned under the lease may be served. Checked on every operation. */
  get serving(): boolean {
    return this.#state === 'serving' && performance.now() < this.#renewedAt + this.ttlMs - this.#marginMs;
  }

  /** Start granting and renewing. Returns at once; listen for `serving`. */
  start(): void {
    if (this.#running || this.#stopped) return;
    this.#running = true;
    void this.#tick();
  }

  /** Stop renewing; revoke the lease when asked (a clean leave frees every owned key at once). */
  async stop(options: { revoke: boolean }): Promise<void> {
    this.#stopped = true;
    this.#clearTimers();
    const lease = this.#lease;
    const held = this.#state !== 'none';
    this.#state = 'none';
    if (options.revoke && held && lease !== undefined) await this.#ops.revoke(lease).catch(() => {});
  }

  async #tick(): Promise<void> {
    this.#tickTimer = undefined;
    if (this.#stopped) return;
    for (const lost of this.#lostLeases) {
      // Revoked at last (or already expired): its keys are gone.
      this.#ops.revoke(lost).then(
        () => this.#lostLeases.delete(lost),
        () => {},
      );
    }
    const sentAt = performance.now();
    const generation = this.#generation;
    this.#inFlight = true;
    try {
      if (this.#state === 'none') {
        const lease = await this.#ops.grant(this.#ttlSeconds);
        if (this.#stopped) {
          await this.#ops.revoke(lease).catch(() => {});
          return;
        }
        this.#lease = lease;
        this.#renewed(sentAt);
      } else {
        const answer = await this.#ops.keepAlive(this.#lease!);
        // Lost meanwhile (our own timer): that lease's sessions are already being dropped.
        if (!this.#stopped && generation === this.#generation) {
          if (answer === 'alive') this.#renewed(sentAt);
          else this.#lose();
        }
      }
      this.#failures = 0;
    } catch {
      // Out of reach: the fence and expiry timers decide; keep trying.
      this.#failures += 1;
    } finally {
      this.#inFlight = false;
    }
    if (this.#stopped || this.#tickTimer !== undefined) return;
    const delay = this.#state === 'none' ? Math.min(250 * 2 ** Math.min(this.#failures, 4), 4000) : this.#renewEveryMs;
    this.#tickTimer = setTimeout(() => void this.#tick(), delay);
    this.#tickTimer.unref();
  }

  #renewed(sentAt: number): void {
    this.#renewedAt = Math.max(this.#renewedAt, sentAt);
    const was = this.#state;
    this.#state = 'serving';
    this.#armTimers();
    if (was !== 'serving') this.emit('serving', this.#lease!);
  }

  #armTimers(): void {
    if (this.#fenceTimer !== undefined) clearTimeout(this.#fenceTimer);
    if (this.#expiryTimer !== undefined) clearTimeout(this.#expiryTimer);
    const now = performance.now();
    this.#fenceTimer = setTimeout(() => this.#fence(), Math.max(0, this.#renewedAt + this.ttlMs - this.#marginMs - now));
    this.#expiryTimer = setTimeout(() => this.#lose(), Math.max(0, this.#renewedAt + this.ttlMs - now));
    this.#fenceTimer.unref();
    this.#expiryTimer.unref();
  }

  #fence(): void {
    this.#fenceTimer = undefined;
    if (this.#state !== 'serving') return;
    this.#state = 'fenced';
    this.emit('fenced', this.#lease!);
  }

  #lose(): void {
    if (this.#state === 'none') return;
    const lease = this.#lease!;
    this.#clearTimers();
    this.#state = 'none';
    this.#generation += 1;
    if (this.#lostLeases.size < 64) this.#lostLeases.add(lease);
    this.emit('lost', lease);
    // Its sessions are being dropped now, so the keys may go at once if the lease still lives.
    this.#ops.revoke(lease).then(
      () => this.#lostLeases.delete(lease),
      () => {},
    );
    // A tick in flight schedules the next one itself when it returns.
    if (!this.#stopped && !this.#inFlight) {
      this.#tickTimer = setTimeout(() => void this.#tick(), 0);
      this.#tickTimer.unref();
    }
  }

  #clearTimers(): void {
    for (const timer of [this.#tickTimer, this.#fenceTimer, this.#expiryTimer]) if (timer !== undefined) clearTimeout(timer);
    this.#tickTimer = this.#fenceTimer = this.#expiryTimer = undefined;
  }
}
