/**
 * When the pool creates replacement sessions, so that refill work never runs on a caller's path.
 *
 * An acquire that takes a Ready session used to start the replacement at once, inside `acquire`:
 * an in-process backend builds its engine synchronously (about a millisecond of main-thread work
 * for QuickJS or a V8 isolate) before the caller's first execute could run, and an out-of-process
 * backend's start competes for the CPUs with that execute. Now a refill request is only noted;
 * creations start later, one per event-loop turn:
 *
 * - after the caller's own continuation (a `setImmediate`, so the microtasks that hand the session
 *   to the caller and start its execute run first);
 * - and not while any execution of the pool is in flight, so a first execute (which for isolated-vm
 *   or a container leaves the main thread and comes back later) is not interleaved with engine
 *   creation; once every execution settled, or at the latest `maxDeferMs` after the refill first
 *   had to wait, creation goes ahead anyway (and the rest of that refill follows without waiting
 *   again), so a pool that is never idle still refills;
 * - at once, in `request()` itself, when someone is waiting for a session (`urgent`): then
 *   creating is that caller's path (a cold miss or a burst), as it always was.
 *
 * One creation per turn keeps the loop responsive while a large ready set refills: whatever else
 * arrives (an HTTP request, an execution's result) is served between two creations.
 */
export interface RefillHooks {
  /** Start at most one creation; return whether one was started. */
  createOne(): boolean;
  /** The pool has executions in flight. */
  busy(): boolean;
  /** An acquire is waiting for a session to be created. */
  urgent(): boolean;
}

/** The longest a refill waits for the pool's executions to settle. */
export const MAX_REFILL_DEFER_MS = 50;

export class RefillScheduler {
  /**
   * The scheduled turn and how to cancel it. The cancel function is the one in effect when the
   * turn was scheduled: clearing a fake timer (tests) with the real clearImmediate would corrupt
   * Node's own count of pending immediates.
   */
  #immediate: { readonly cancel: () => void } | undefined;
  #timer: { readonly cancel: () => void } | undefined;
  /** When the current wait for idleness began (undefined: not waiting). */
  #deferredSince: number | undefined;
  #closed = false;

  constructor(
    private readonly hooks: RefillHooks,
    private readonly maxDeferMs = MAX_REFILL_DEFER_MS,
  ) {}

  /**
   * Something changed that may call for creations: look again on the next turn. When an acquire
   * waits for a session, creating is that caller's path: start what is wanted now.
   */
  request(): void {
    if (this.#closed) return;
    if (this.hooks.urgent()) {
      while (this.hooks.urgent() && this.hooks.createOne());
    }
    if (this.#immediate !== undefined || this.#timer !== undefined) return;
    const clear = clearImmediate;
    const handle = setImmediate(() => this.#tick());
    this.#immediate = { cancel: () => clear(handle) };
  }

  /** The pool's executions all settled: a refill waiting for that may go ahead. */
  idle(): void {
    if (this.#timer === undefined) return;
    this.#timer.cancel();
    this.#timer = undefined;
    this.request();
  }

  /** No creation is started any more (the pool is closing). */
  close(): void {
    this.#closed = true;
    this.#immediate?.cancel();
    this.#timer?.cancel();
    this.#immediate = undefined;
    this.#timer = undefined;
  }

  #tick(): void {
    this.#immediate = undefined;
    if (this.#closed) return;
    if (!this.hooks.urgent() && this.hooks.busy()) {
      const now = performance.now();
      this.#deferredSince ??= now;
      const left = this.maxDeferMs - (now - this.#deferredSince);
      if (left > 0) {
        const clear = clearTimeout;
        const handle = setTimeout(() => {
          this.#timer = undefined;
          this.#tick();
        }, left);
        handle.unref();
        this.#timer = { cancel: () => clear(handle) };
        return;
      }
    }
    // More may be wanted: look again on the next turn, after whatever else is queued. The wait for
    // idleness is per refill, not per creation: once it ran out, the rest follow without waiting.
    if (this.hooks.createOne()) this.request();
    else this.#deferredSince = undefined;
  }
}
