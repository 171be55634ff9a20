const BASE_MS = 100;
const MAX_MS = 30_000;

/**
 * Exponential backoff with jitter for a backend that fails to create sessions: 100 ms doubling to
 * 30 s. The pool never spins hot on a broken engine, and the first success resets it.
 */
export class Backoff {
  #failures = 0;
  #until = 0;
  #retryTimer: NodeJS.Timeout | undefined;

  /** Record a failure; returns the delay before the next attempt. */
  fail(now = Date.now()): number {
    this.#failures += 1;
    const delay = Math.min(MAX_MS, BASE_MS * 2 ** (this.#failures - 1)) * (0.8 + Math.random() * 0.4);
    this.#until = now + delay;
    return Math.round(delay);
  }

  succeed(): void {
    this.#failures = 0;
    this.#until = 0;
  }

  /** Milliseconds left before the next attempt is allowed (0 when not backing off). */
  remaining(now = Date.now()): number {
    return Math.max(0, this.#until - now);
  }

  /**
   * While backing off, call `retry` once the wait is over (one unref'd timer, however often this
   * is called) and return true; otherwise return false at once.
   */
  deferred(retry: () => void): boolean {
    const wait = this.remaining();
    if (wait === 0) return false;
    this.#retryTimer ??= setTimeout(() => {
      this.#retryTimer = undefined;
      retry();
    }, wait).unref();
    return true;
  }

  /** Drop a scheduled retry (the pool is closing). */
  cancel(): void {
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }
}
