/**
 * EgressEnabled pools: sessions get a per-pool bridge network with a default route, but can reach
 * neither the host's own services (a listener the test opens on all host addresses) nor other
 * sessions on the same network. (EgressDisabled, the default, is covered in
 * code-interpreter.test.ts: no interface but loopback.)
 */

import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server } from 'node:net';
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
    const context = {
      poolName: 'ctest-egress',
      ownerId: owner,
      containerType: 'PythonLTS' as const,
      limits: LIMITS,
      network: EGRESS,
    };
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

/**
 * A stand-in for the internet: a network namespace made by the test, reached from the host
 * through a veth pair, with TCP listeners on two addresses. The pool allows one of them.
 */
describe.skipIf(!available)('container backend: egress allow-list', () => {
  const owner = newOwnerId();
  const backend = new ContainerBackend();
  const tag = randomBytes(3).toString('hex');
  const ns = `sp-inet-${tag}`;
  const hostVeth = `sph${tag}`;
  const nsVeth = `spn${tag}`;
  let bridge = '';
  const octet = 100 + (parseInt(tag.slice(0, 2), 16) % 100);
  const allowedIp = `198.18.${octet}.2`;
  const deniedIp = `198.18.${octet}.3`;
  let listener: ChildProcess | undefined;
  let session: BackendSession;
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

  beforeAll(async () => {
    ip('netns', 'add', ns);
    ip('link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', nsVeth);
    ip('link', 'set', nsVeth, 'netns', ns);
    ip('addr', 'add', `198.18.${octet}.1/24`, 'dev', hostVeth);
    ip('link', 'set', hostVeth, 'up');
    for (const cmd of [
      ['addr', 'add', `${allowedIp}/24`, 'dev', nsVeth],
      ['addr', 'add', `${deniedIp}/24`, 'dev', nsVeth],
      ['link', 'set', nsVeth, 'up'],
      ['link', 'set', 'lo', 'up'],
      ['route', 'add', 'default', 'via', `198.18.${octet}.1`],
    ]) {
      ip('netns', 'exec', ns, 'ip', ...cmd);
    }
    listener = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        'python3',
        '-c',
        [
          'import socket, threading',
          'def serve(addr):',
          '    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((addr, 8000)); s.listen()',
          '    while True:',
          '        c, _ = s.accept(); c.sendall(b"internet\\n"); c.close()',
          `threading.Thread(target=serve, args=("${deniedIp}",), daemon=True).start()`,
          `serve("${allowedIp}")`,
        ].join('\n'),
      ],
      { stdio: 'ignore' },
    );
    await new Promise((r) => setTimeout(r, 500));
    const network = { egress: 'EgressEnabled' as const, allow: [`${allowedIp}/32`] };
    await backend.prepare({ poolName: 'ctest-allow', ownerId: owner, containerType: 'PythonLTS', limits: LIMITS, network });
    session = await backend.create(spec(owner, { poolName: 'ctest-allow', network }), { onExit: noExit });
    bridge = podman('network', 'inspect', 'sandpool-egress-ctest-allow', '--format', '{{.NetworkInterface}}').trim();
    // The rules were in place before the first session joined (the bridge is brought up first).
    expect(spawnSync('iptables', ['-S'], { encoding: 'utf8' }).stdout).toContain(`-N SANDPOOL-CT-${bridge}`);
  }, 180_000);

  afterAll(async () => {
    await backend.close();
    listener?.kill('SIGKILL');
    spawnSync('ip', ['link', 'del', hostVeth]);
    spawnSync('ip', ['netns', 'del', ns]);
    expect(containersOf(owner)).toEqual([]);
    // Only this pool's chain: other suites (and other processes) may hold chains of their own.
    expect(spawnSync('iptables', ['-S'], { encoding: 'utf8' }).stdout).not.toContain(`-N SANDPOOL-CT-${bridge}`);
  });

  const run = async (code: string) =>
    (await backend.execute(session, { language: 'python', code, timeoutMs: 20_000, outputMaxBytes: 10_000 })).result;

  it('reaches an allowed address and nothing else', async () => {
    // Both listeners answer from the host, so a refusal below is the allow-list, not the stand-in.
    for (const address of [allowedIp, deniedIp]) {
      const socket = await new Promise<string>((resolve) => {
        const c = connect(8000, address);
        c.once('data', (d) => {
          resolve(String(d));
          c.destroy();
        });
        c.once('error', (e) => resolve(e.message));
      });
      expect(socket).toBe('internet\n');
    }
    expect(await run(tryConnect(allowedIp, 8000))).toBe('connected');
    expect(await run(tryConnect(deniedIp, 8000))).not.toBe('connected');
  }, 60_000);

  it('rejects allow-list entries that are neither CIDRs nor DNS names', async () => {
    const other = new ContainerBackend();
    try {
      await expect(
        other.prepare({
          poolName: 'ctest-allow-bad',
          ownerId: owner,
          containerType: 'PythonLTS',
          limits: LIMITS,
          network: { egress: 'EgressEnabled', allow: ['10.0.0.0/33'] },
        }),
      ).rejects.toMatchObject({ message: expect.stringMatching(/invalid IPv4 address or CIDR "10.0.0.0\/33"/) });
    } finally {
      await other.close();
    }
  });
});
