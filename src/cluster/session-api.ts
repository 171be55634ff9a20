/**
 * What `ClusterPool.acquire()` returns: the pool's public session contract, which a local session
 * and a remote handle both implement.
 */

export type { SessionApi } from '../session.js';
