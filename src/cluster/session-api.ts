/**
 * What `ClusterPool.acquire()` returns: the public surface of a pool's session, which a local
 * `Session` and a `RemoteSession` both offer. One definition, in src/session.ts.
 */
export type { SessionApi } from '../session.js';
