/**
 * What `ClusterPool.acquire()` returns: the public surface of a pool's `Session`, which a local
 * session and a remote handle both offer.
 */

import type { Session } from '../session.js';

export type SessionApi = Pick<
  Session,
  | 'identifier'
  | 'id'
  | 'state'
  | 'execute'
  | 'uploadFile'
  | 'listFiles'
  | 'fileInfo'
  | 'downloadFile'
  | 'deleteFile'
  | 'fetch'
  | 'connect'
  | 'stop'
  | 'info'
>;
