/**
 * Runs an async task once and shares its promise; a failed run is forgotten so the next caller
 * tries again (an engine that was down at start may be up later).
 */
export class OnceAsync {
  #done = false;
  #running: Promise<void> | undefined;

  constructor(private readonly task: () => Promise<void>) {}

  get done(): boolean {
    return this.#done;
  }

  run(): Promise<void> {
    if (this.#done) return Promise.resolve();
    this.#running ??= this.task().then(
      () => {
        this.#done = true;
      },
      (error: unknown) => {
        this.#running = undefined;
        throw error;
      },
    );
    return this.#running;
  }
}

/** Resolve when every promise settled or `graceMs` passed, whichever is first; no timer is left behind. */
export async function settleWithin(promises: readonly Promise<unknown>[], graceMs: number): Promise<void> {
  if (promises.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, graceMs);
  });
  await Promise.race([Promise.allSettled(promises), grace]);
  clearTimeout(timer);
}

/** Background promises an owner must await before it may say it is closed. */
export class BackgroundWork {
  readonly #running = new Set<Promise<unknown>>();

  track(work: Promise<unknown>): void {
    this.#running.add(work);
    void work.finally(() => this.#running.delete(work));
  }

  /** Resolves once nothing is running, including work tracked while waiting. */
  async drain(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }
}
