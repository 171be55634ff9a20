/**
 * Route table. Azure clients build data-plane URLs as `poolManagementEndpoint + "/" + operation`,
 * and they disagree on slashes, prefixes and encoding, so routing is on a normalised list of decoded
 * path segments: `//` collapsed, a trailing `/` dropped, `/subscriptions/…/sessionPools/NAME`
 * accepted as well as `/pools/NAME`, and the operation matched on what follows the pool name.
 */

import { HttpError } from './http-errors.js';

/** Every operation the server knows; also the `operation` label in metrics and audit records. */
export type Operation =
  | 'healthz'
  | 'readyz'
  | 'metrics'
  | 'ui'
  | 'pool.list'
  | 'pool.get'
  | 'pool.put'
  | 'pool.patch'
  | 'pool.delete'
  | 'gen0.execute'
  | 'gen0.upload'
  | 'gen0.listFiles'
  | 'gen0.download'
  | 'gen1.execute'
  | 'gen1.upload'
  | 'gen1.download'
  | 'gen2.execute'
  | 'gen2.getExecution'
  | 'gen2.upload'
  | 'files.list'
  | 'files.get'
  | 'gen2.download'
  | 'files.delete'
  | 'session.get'
  | 'session.delete'
  | 'session.pause'
  | 'session.resume'
  | 'session.extend'
  | 'session.fork'
  | 'session.snapshot'
  | 'session.fromSnapshot'
  | 'snapshots.list'
  | 'snapshots.delete'
  | 'sessions.list'
  | 'metadata'
  | 'management.getSession'
  | 'management.listSessions'
  | 'management.stopSession'
  | 'forward'
  | 'gen1.executeStream'
  | 'mcp';

export interface RouteMatch {
  readonly operation: Operation;
  /** Pool name for pool-scoped routes. */
  readonly pool?: string;
  /** File path (relative, may contain `/`) or execution id, when the route carries one. */
  readonly param?: string;
  /** For `forward`: the path after the pool prefix, still percent-encoded, with a leading `/`. */
  readonly forwardPath?: string;
}

/** Split a request path into decoded segments; `//` and trailing slashes disappear. */
export function pathSegments(pathname: string): { decoded: string[]; raw: string[] } {
  const raw = pathname.split('/').filter((s) => s.length > 0);
  const decoded = raw.map((segment) => {
    try {
      return decodeURIComponent(segment);
    } catch {
      throw new HttpError(400, 'SessionRequestValidationFailed', 'the request path has an invalid percent-encoding');
    }
  });
  return { decoded, raw };
}

const eq = (a: string | undefined, b: string): boolean => a !== undefined && a.toLowerCase() === b.toLowerCase();

/**
 * Find the pool prefix: `/pools/NAME/…` or Azure's `/subscriptions/S/resourceGroups/RG/sessionPools/NAME/…`
 * (also with `/providers/Microsoft.App` before `sessionPools`). Returns the index after the pool name.
 */
function poolPrefix(seg: readonly string[]): { pool: string; rest: number } | undefined {
  if (eq(seg[0], 'pools') && seg[1] !== undefined) return { pool: seg[1], rest: 2 };
  if (eq(seg[0], 'subscriptions')) {
    const at = seg.findIndex((s, i) => i >= 2 && eq(s, 'sessionPools'));
    const name = at === -1 ? undefined : seg[at + 1];
    if (name !== undefined) return { pool: name, rest: at + 2 };
  }
  return undefined;
}

/**
 * Match a request. `customContainer(pool)` says whether a pool forwards unknown paths to its
 * container (CustomContainer pools answer only `.management/*` themselves, as on Azure).
 */
export function matchRoute(method: string, pathname: string, customContainer: (pool: string) => boolean): RouteMatch | undefined {
  const { decoded: seg, raw } = pathSegments(pathname);
  const m = method.toUpperCase();
  if (seg.length === 1 && eq(seg[0], 'healthz') && (m === 'GET' || m === 'HEAD')) return { operation: 'healthz' };
  if (seg.length === 1 && eq(seg[0], 'readyz') && (m === 'GET' || m === 'HEAD')) return { operation: 'readyz' };
  if (seg.length === 1 && eq(seg[0], 'metrics') && m === 'GET') return { operation: 'metrics' };
  if (eq(seg[0], 'ui') && (m === 'GET' || m === 'HEAD')) return { operation: 'ui', param: seg.slice(1).join('/') };
  if (seg.length === 1 && eq(seg[0], 'pools') && m === 'GET') return { operation: 'pool.list' };
  if (seg.length === 1 && eq(seg[0], 'mcp') && (m === 'GET' || m === 'POST' || m === 'DELETE')) return { operation: 'mcp' };

  const prefix = poolPrefix(seg);
  if (prefix === undefined) return undefined;
  const { pool } = prefix;
  const rest = seg.slice(prefix.rest);
  if (rest.length === 0) {
    if (m === 'GET') return { operation: 'pool.get', pool };
    if (m === 'PUT') return { operation: 'pool.put', pool };
    if (m === 'PATCH') return { operation: 'pool.patch', pool };
    if (m === 'DELETE') return { operation: 'pool.delete', pool };
    return undefined;
  }

  if (eq(rest[0], '.management') && rest.length === 2 && m === 'POST') {
    if (eq(rest[1], 'getSession')) return { operation: 'management.getSession', pool };
    if (eq(rest[1], 'listSessions')) return { operation: 'management.listSessions', pool };
    if (eq(rest[1], 'stopSession')) return { operation: 'management.stopSession', pool };
  }
  if (customContainer(pool)) {
    return { operation: 'forward', pool, forwardPath: `/${raw.slice(prefix.rest).join('/')}` };
  }
  const found = matchDataPlane(m, rest);
  return found === undefined ? undefined : { ...found, pool };
}

function matchDataPlane(m: string, rest: readonly string[]): Omit<RouteMatch, 'pool'> | undefined {
  const [a, b] = rest;
  const n = rest.length;
  if (eq(a, 'python')) {
    if (n === 2 && m === 'POST' && eq(b, 'execute')) return { operation: 'gen0.execute' };
    if (n === 2 && m === 'POST' && eq(b, 'uploadFile')) return { operation: 'gen0.upload' };
    if (n === 2 && m === 'GET' && eq(b, 'files')) return { operation: 'gen0.listFiles' };
    if (n === 2 && m === 'GET' && eq(b, 'downloadFile')) return { operation: 'gen0.download' };
    return undefined;
  }
  // The live service answers /execute, /code/execute and /executions on every api-version; the
  // response shape follows the route.
  if (m === 'POST' && ((n === 2 && eq(a, 'code') && eq(b, 'execute')) || (n === 1 && eq(a, 'execute')))) {
    return { operation: 'gen1.execute' };
  }
  // sandpool's extension: the Gen 1 execute body, answered as server-sent events while the code runs.
  if (m === 'POST' && n === 3 && eq(a, 'code') && eq(b, 'execute') && eq(rest[2], 'stream')) {
    return { operation: 'gen1.executeStream' };
  }
  if (eq(a, 'executions')) {
    if (n === 1 && m === 'POST') return { operation: 'gen2.execute' };
    if (n === 2 && m === 'GET') return { operation: 'gen2.getExecution', param: b! };
    return undefined;
  }
  if (eq(a, 'files')) {
    if (n === 1 && m === 'GET') return { operation: 'files.list' };
    if (n === 1 && m === 'POST') return { operation: 'gen2.upload' };
    if (n === 2 && m === 'POST' && eq(b, 'upload')) return { operation: 'gen1.upload' };
    // `files/content/{name…}` (Gen 1) is checked before `files/{name…}/content` (Gen 2); for a file
    // named "content" both readings name the same file.
    if (n >= 3 && m === 'GET' && eq(b, 'content')) return { operation: 'gen1.download', param: rest.slice(2).join('/') };
    if (n >= 3 && m === 'GET' && eq(rest[n - 1], 'content')) {
      return { operation: 'gen2.download', param: rest.slice(1, -1).join('/') };
    }
    if (n >= 2 && m === 'GET') return { operation: 'files.get', param: rest.slice(1).join('/') };
    if (n >= 2 && m === 'DELETE') return { operation: 'files.delete', param: rest.slice(1).join('/') };
    return undefined;
  }
  if (n === 1 && eq(a, 'session')) {
    if (m === 'GET') return { operation: 'session.get' };
    if (m === 'DELETE') return { operation: 'session.delete' };
  }
  // sandpool extension (docs/SERVER.md): sessions that outlive memory.
  if (n === 2 && eq(a, 'session') && m === 'POST') {
    for (const action of ['pause', 'resume', 'extend', 'fork', 'snapshot', 'fromSnapshot'] as const) {
      if (eq(b, action)) return { operation: `session.${action}` };
    }
  }
  if (eq(a, 'snapshots')) {
    if (n === 1 && m === 'GET') return { operation: 'snapshots.list' };
    if (n === 2 && m === 'DELETE') return { operation: 'snapshots.delete', param: b! };
  }
  if (n === 1 && eq(a, 'listSessions') && m === 'GET') return { operation: 'sessions.list' };
  if (n === 1 && eq(a, 'metadata') && m === 'GET') return { operation: 'metadata' };
  return undefined;
}
