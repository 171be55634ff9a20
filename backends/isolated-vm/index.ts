/**
 * `sandpool/backends/isolated-vm`: JavaScript sessions in V8 isolates (isolated-vm 5.x), in this
 * process. The native addon loads on first use (`prepare` or the first `create`); when it cannot
 * load, both reject with `BackendError` code `SANDPOOL_BACKEND_UNAVAILABLE` and a rebuild hint.
 *
 * ```ts
 * import { SessionPool } from 'sandpool';
 * import { IsolatedVMBackend } from 'sandpool/backends/isolated-vm';
 * const pool = new SessionPool({ backend: new IsolatedVMBackend(), containerType: 'NodeLTS' });
 * ```
 *
 * Execution semantics are those of `sandpool/backends/quickjs` (script-mode globals, top-level
 * await, Azure result rendering, Node-like console, in-sandbox timers; no host objects).
 *
 * isolated-vm specifics:
 * - One isolate per session with `memoryLimit = limits.memoryMb` (about 1 MiB per idle session).
 *   Hitting the limit disposes the isolate: that execution (or, if the code stopped just short
 *   of it, the next one) reports `sessionState: 'lost'`.
 * - Code runs on isolated-vm's threads, so a busy cell does not block the Node event loop.
 * - A timeout terminates the code (uncatchable, `finally` blocks do not run) and the isolate
 *   keeps its state; `destroy` disposes the isolate at once, even mid-execution.
 * - Node >= 20: if isolated-vm crashes at start, run node with `--no-node-snapshot`.
 */

export {
  IsolatedVMBackend,
  IsolatedVMBackendOptionsSchema,
  type IsolatedVMBackendOptions,
} from './isolated-vm-backend.js';
