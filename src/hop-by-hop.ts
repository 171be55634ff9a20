/**
 * Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so a proxy must not pass
 * them on, nor any header the `Connection` header names. One list for every layer that forwards
 * HTTP to a custom container: the container backend's forwarder (backends/container/http-forward.ts),
 * the server (src/server/forwarding.ts) and the cluster's forward to a session's owner
 * (src/cluster/remote-session.ts). It is neither pool nor server code, so all of them may import it.
 */

export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Headers minus the hop-by-hop ones and those named in `connection` (names compared in lower case). */
export function endToEndHeaders(entries: Iterable<[string, string]>, connection: string | null | undefined): [string, string][] {
  const named = new Set(
    (connection ?? '')
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
  );
  return [...entries].filter(([name]) => !HOP_BY_HOP_HEADERS.has(name.toLowerCase()) && !named.has(name.toLowerCase()));
}
