/**
 * `sandpool/backends/quickjs`: JavaScript sessions in QuickJS (WebAssembly), in this process.
 *
 * ```ts
 * import { SessionPool } from 'sandpool';
 * import { QuickJSBackend } from 'sandpool/backends/quickjs';
 * const pool = new SessionPool({ backend: new QuickJSBackend(), containerType: 'NodeLTS' });
 * ```
 */

export { QuickJSBackend, QuickJSBackendOptionsSchema, type QuickJSBackendOptions } from './quickjs-backend.js';
