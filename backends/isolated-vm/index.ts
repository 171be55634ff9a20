/**
 * `sandpool/backends/isolated-vm`: JavaScript sessions in V8 isolates (isolated-vm), in this
 * process. The native addon loads on first use (`prepare` or the first `create`).
 *
 * ```ts
 * import { SessionPool } from 'sandpool';
 * import { IsolatedVMBackend } from 'sandpool/backends/isolated-vm';
 * const pool = new SessionPool({ backend: new IsolatedVMBackend(), containerType: 'NodeLTS' });
 * ```
 */

export {
  IsolatedVMBackend,
  IsolatedVMBackendOptionsSchema,
  type IsolatedVMBackendOptions,
} from './isolated-vm-backend.js';
