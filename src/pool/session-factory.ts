import type {
  Backend,
  BackendSession,
  CreateOptions,
  DestroyReason,
  LostState,
  Restored,
  SessionExit,
  SessionSpec,
} from '../backend.js';
import { toSandpoolError, type SandpoolError } from '../errors.js';
import { resolveCustomContainer, type ResolvedPoolOptions } from '../options.js';
import { newSlot, type Slot } from './slot.js';

export interface SessionFactoryHooks {
  /** A new slot is Pending (the pool registers it before the backend is called). */
  pending(slot: Slot, onDemand: boolean): void;
  /** The backend created the session; `createMs` is how long that took. */
  created(slot: Slot, createMs: number): void;
  /** The backend failed to create the session. Not called for slots dropped on purpose. */
  failed(slot: Slot, failure: SandpoolError): void;
  /** The session ended by itself after creation. */
  exited(slot: Slot, exit: SessionExit): void;
  /** A Pending slot leaves the pool without a session and without counting as a failure. */
  dropped(slot: Slot): void;
  /** The backend failed to destroy a session (it is reported, never retried). */
  destroyFailed(slot: Slot, failure: SandpoolError): void;
  /** Background work the pool must await on close. */
  track(work: Promise<unknown>): void;
}

/**
 * The pool's only caller of the backend's `prepare`, `create` and `destroy`; turns their results into slot
 * transitions (through the hooks). A slot dropped while its create was in flight (the pool closed,
 * or it was trimmed) gets its abort signal; if the backend still finishes, what it made is
 * destroyed at once instead of leaking. Every call is tracked, so the pool's close awaits it.
 */
export class SessionFactory {
  constructor(
    private readonly backend: Backend,
    /** The owning pool's id, for the labels that let a later start find a crashed owner's leftovers. */
    private readonly ownerId: string,
    /** Read at every call: the pool's options may change (`pool.update()`). */
    private readonly options: () => ResolvedPoolOptions,
    private readonly hooks: SessionFactoryHooks,
  ) {}

  /** What every session of the pool is created from: the spec without its session id. */
  specBase(): Omit<SessionSpec, 'sessionId'> {
    const o = this.options();
    return {
      poolName: o.name,
      ownerId: this.ownerId,
      containerType: o.containerType,
      limits: o.limits,
      network: o.network,
      customContainer: resolveCustomContainer(o),
    };
  }

  /** The backend's one-time preparation; rejects with a SandpoolError saying the backend is not usable. */
  async prepare(): Promise<void> {
    try {
      await this.backend.prepare?.({ ...this.specBase(), signal: undefined });
    } catch (error) {
      throw toSandpoolError(error, `backend "${this.backend.name}" is not usable`);
    }
  }

  /** `refill`: a replacement created after the pool's initial fill (for the refill statistics). */
  start(onDemand: boolean, refill: boolean): Slot {
    const slot = newSlot(Date.now(), refill);
    this.hooks.pending(slot, onDemand);
    const started = performance.now();
    const work = this.backend
      .create(
        { sessionId: slot.id, ...this.specBase() },
        { signal: slot.createAbort.signal, onExit: (exit) => this.hooks.exited(slot, exit) },
      )
      .then(
        (handle) => {
          slot.handle = handle;
          if (slot.state === 'Destroyed') {
            this.hooks.track(this.backend.destroy(handle, { reason: 'poolClosed' }).catch(() => undefined));
            return;
          }
          this.hooks.created(slot, performance.now() - started);
        },
        (error: unknown) => {
          if (slot.state === 'Destroyed') return;
          this.hooks.failed(slot, toSandpoolError(error, `backend "${this.backend.name}" could not create a session`));
        },
      );
    this.hooks.track(work);
    return slot;
  }

  /**
   * A new slot whose session comes from `restore` (a machine-level checkpoint) instead of a
   * create. It is Pending while the backend works; on failure it leaves the pool (without counting
   * as a create failure: the backend is healthy, the checkpoint is not) and the error is thrown.
   */
  async restore(
    restore: (spec: SessionSpec, options: CreateOptions) => Promise<Restored>,
  ): Promise<{ slot: Slot; lost: readonly LostState[] }> {
    const slot = newSlot(Date.now());
    this.hooks.pending(slot, true);
    const work = restore(
      { sessionId: slot.id, ...this.specBase() },
      { signal: slot.createAbort.signal, onExit: (exit) => this.hooks.exited(slot, exit) },
    );
    this.hooks.track(work.catch(() => undefined));
    let restored: Restored;
    try {
      restored = await work;
    } catch (error) {
      if (slot.state !== 'Destroyed') this.hooks.dropped(slot);
      throw error;
    }
    slot.handle = restored.session;
    if (slot.state === 'Destroyed') void this.destroyHandle(restored.session);
    return { slot, lost: restored.lost };
  }

  /** Destroy a backend session no slot refers to any more (a paused one's); never rejects. */
  destroyHandle(handle: BackendSession): Promise<void> {
    const work = this.backend.destroy(handle, { reason: 'stopped' }).catch(() => undefined);
    this.hooks.track(work);
    return work;
  }

  /** Destroy a created session in the backend; resolves when done, never rejects. */
  destroy(slot: Slot, reason: DestroyReason): Promise<void> {
    const work = this.backend.destroy(slot.handle!, { reason }).catch((error: unknown) => {
      this.hooks.destroyFailed(slot, toSandpoolError(error, 'destroying a session failed'));
    });
    this.hooks.track(work);
    return work;
  }
}
