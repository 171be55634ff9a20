/**
 * Acquires in flight, by identifier. A later acquire of the same identifier joins the first one
 * until it settles (one session per identifier, however many callers race for it). What an acquire
 * binds (`env`, `files`) waits here until the allocator hands its slot over, so the binding is the
 * first link of the session's chain; the acquire then waits for it.
 */

import { toSandpoolError, type SandpoolError } from '../errors.js';
import type { Session } from '../session.js';
import type { SessionBinding } from './session-binding.js';

export class AcquiresInFlight {
  readonly #acquiring = new Map<string, Promise<Session>>();
  readonly #bindings = new Map<string, SessionBinding>();

  constructor(
    /** End a session whose binding failed (reason `failed`). */
    private readonly fail: (session: Session, failure: SandpoolError) => Promise<void>,
  ) {}

  has(identifier: string): boolean {
    return this.#acquiring.has(identifier);
  }

  /** The acquire of `identifier` in flight, to join. */
  get(identifier: string): Promise<Session> | undefined {
    return this.#acquiring.get(identifier);
  }

  /** Later acquires of `identifier` join `acquiring` until it settles; its binding is forgotten then. */
  join(identifier: string, acquiring: Promise<Session>): Promise<Session> {
    this.#acquiring.set(identifier, acquiring);
    const forget = () => {
      this.#acquiring.delete(identifier);
      this.#bindings.delete(identifier);
    };
    acquiring.then(forget, forget);
    return acquiring;
  }

  /** Hold `binding` for the session about to be handed to `identifier`. */
  bindOnClaim(identifier: string, binding: SessionBinding): void {
    this.#bindings.set(identifier, binding);
  }

  /** A session was handed to `identifier`: bind what its acquire asked for, first in its chain. */
  claim(session: Session, identifier: string): void {
    const binding = this.#bindings.get(identifier);
    if (binding === undefined) return;
    this.#bindings.delete(identifier);
    void session.bind(binding).catch(() => undefined); // awaited (and reported) by `bound`
  }

  /** Wait for the claimed session's binding; a session whose binding failed is ended. */
  async bound(session: Session): Promise<Session> {
    try {
      await session.bound();
      return session;
    } catch (error) {
      const failure = toSandpoolError(error, 'binding the environment or files failed');
      await this.fail(session, failure);
      throw failure;
    }
  }
}
