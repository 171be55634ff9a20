/**
 * Records every uncaughtException and unhandledRejection while installed. A stream or emitter
 * without an 'error' listener ends a real server process; under vitest it would only be reported
 * next to a passing test. Tests that run a server or a backend assert `errors` is empty.
 */

export interface ProcessErrorTrap {
  readonly errors: { readonly kind: 'uncaughtException' | 'unhandledRejection'; readonly error: unknown }[];
  /** Throws when anything was recorded; removes the listeners. */
  assertNone(): void;
  dispose(): void;
}

export function trapProcessErrors(): ProcessErrorTrap {
  const errors: ProcessErrorTrap['errors'] = [];
  const onException = (error: unknown) => errors.push({ kind: 'uncaughtException', error });
  const onRejection = (error: unknown) => errors.push({ kind: 'unhandledRejection', error });
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  const dispose = () => {
    process.off('uncaughtException', onException);
    process.off('unhandledRejection', onRejection);
  };
  return {
    errors,
    dispose,
    assertNone() {
      dispose();
      if (errors.length > 0) {
        const list = errors.map((e) => `${e.kind}: ${(e.error as Error)?.stack ?? String(e.error)}`).join('\n');
        throw new Error(`the process saw ${errors.length} unhandled error(s):\n${list}`);
      }
    },
  };
}
