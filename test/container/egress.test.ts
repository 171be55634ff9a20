/**
 * EgressEnabled pools: sessions get a per-pool bridge network with a default route, but can reach
 * neither the host's own services (a listener the test opens on all host addresses) nor other
 * sessions on the same network. (EgressDisabled, the default, is covered in
 * code-interpreter.test.ts: no interface but loopback.)
 */

import { createServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import type { BackendSession } from '../../src/backend.js';
import { containersOf, LIMITS, newOwnerId, noExit, podman, podmanAvailable, spec } from './helpers.js';

const available = podmanAvailable();
const EGRESS = { egress: 'EgressEnabled' as const, allow: [] };

/** Python that tries a TCP connect and returns "connected" or the error class. */
const tryConnect = (host: string, port: number) =>
  `import socket\ns = socket.socket()\ns.settimeout(2)\ntry:\n  s.connect((${JSON.stringify(host)}, ${port})); r = 'connected'\nexcept OSError as e:\n  r = type(e).__name__\nfinally:\n  s.close()\nr`;

describe.skipIf(!available)('container backend: egress-enabled network isolation', () => {
  const owner = newOwnerId();
  const backend = new ContainerBackend();
  let hostServer: Server;
  let hostPort = 0;
  let a: BackendSession;
  let b: BackendSession;

  const run = async (session: BackendSession, code: string) =>
    (await backend.execute(session, { language: 'python', code, timeoutMs: 20_000, outputMaxBytes: 10_000 })).result;
  const ipOf = (session: BackendSession) =>
    podman('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', session.etag!);

  beforeAll(async () => {
    hostServer = createServer((socket) => socket.end('host service\n'));
    await new Promise<void>((resolve) => hostServer.listen(0, '0.0.0.0', resolve));
    hostPort = (hostServer.address() as { port: number }).port;
    const context = { poolName: 'ctest-egress', ownerId: owner, containerType: 'PythonLTS' as const, limits: LIMITS, network: EGRESS };
    await backend.prepare(context);
    [a, b] = await Promise.all([
      backend.create(spec(owner, { poolName: 'ctest-egress', network: EGRESS }), { onExit: noExit }),
      backend.create(spec(owner, { poolName: 'ctest-egress', network: EGRESS }), { onExit: noExit }),
    ]);
  }, 180_000);

  afterAll(async () => {
    await backend.close();
    hostServer.close();
    expect(containersOf(owner)).toEqual([]);
    expect(podman('network', 'ls', '--format', '{{.Name}}').split('\n')).not.toContain('sandpool-egress-ctest-egress');
  });

  it('has a network interface and a default route', async () => {
    const routes = await run(a, "open('/proc/net/route').read().split('\\n')[1].split()[1]");
    expect(routes).toBe('00000000');
    expect(ipOf(a)).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  });

  it('cannot reach services listening on the host', async () => {
    const hostAddresses = Object.values(networkInterfaces())
      .flat()
      .filter((i) => i !== undefined && i.family === 'IPv4' && !i.internal)
      .map((i) => i!.address);
    expect(hostAddresses.length).toBeGreaterThan(0);
    for (const address of hostAddresses) {
      expect(await run(a, tryConnect(address, hostPort))).not.toBe('connected');
    }
  }, 60_000);

  it('cannot reach another session on the same network', async () => {
    await run(
      a,
      'import socket, threading\nsrv = socket.socket()\nsrv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\nsrv.bind(("0.0.0.0", 9000))\nsrv.listen()\nthreading.Thread(target=lambda: [srv.accept()[0].close() for _ in iter(int, 1)], daemon=True).start()',
    );
    // Positive control: the listener works from inside its own session.
    expect(await run(a, tryConnect(ipOf(a), 9000))).toBe('connected');
    expect(await run(b, tryConnect(ipOf(a), 9000))).not.toBe('connected');
  }, 60_000);
});
