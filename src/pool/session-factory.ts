import type { Backend, SessionExit, SessionSpec } from '../backend.js';
import { toSandpoolError, type SandpoolError } from '../errors.js';
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
  /** Background work the pool must await on close. */
  track(work: Promise<unknown>): void;
}

/**
 * Turns the backend's `create` into slot transitions. A slot dropped while its create was in
 * flight (the pool closed, or it was trimmed) gets its abort signal; if the backend still
 * finishes, what it made is destroyed at once instead of leaking.
 */
export class SessionFactory {
  constructor(
    private readonly backend: Backend,
    private readonly specFor: (sessionId: string) => SessionSpec,
    private readonly hooks: SessionFactoryHooks,
  ) {}

  start(onDemand: boolean): Slot {
    const slot = newSlot(Date.now());
    this.hooks.pending(slot, onDemand);
    const started = performance.now();
    const work = this.backend
      .create(this.specFor(slot.id), { signal: slot.createAbort.signal, onExit: (exit) => this.hooks.exited(slot, exit) })
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
}
