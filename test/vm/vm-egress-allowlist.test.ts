/**
 * `network.allow` on real QEMU (TCG here). A stand-in for the internet: a network namespace made by
 * the test, reached from the host through a veth pair, with TCP listeners on two public-looking
 * TEST-NET addresses (private ranges are rejected by the shared chain before any allow-list). The
 * session allows one of them, and `localhost` (a DNS name resolving to the host itself), which
 * must still not open the host's own services: the shared chain rejects them first.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer, connect, type Server } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { BackendSession } from '../../src/backend.js';
import { InvalidOptionsError } from '../../src/errors.js';
import { NetworkPolicySchema, SessionLimitsSchema } from '../../src/options.js';
import type { VMBackend } from '../../backends/vm/index.js';
import { installAllowList } from '../../backends/vm/egress-allowlist.js';
import { SESSION_UID_LAST } from '../../backends/vm/run-dir.js';
import { CREATE_TIMEOUT_MS, makeVmBackend, TEST_TIMEOUT_MS, VM_LIMITS, vmSpec } from './vm-test-config.js';

const ownerId = `vmtest-allow-${randomUUID()}`;
const tag = randomUUID().slice(0, 6);
const ns = `sp-vminet-${tag}`;
const hostVeth = `svh${tag}`;
const nsVeth = `svn${tag}`;
const gateway = '198.51.100.1';
const allowedIp = '198.51.100.2';
const deniedIp = '203.0.113.2';
const network = NetworkPolicySchema.parse({ egress: 'EgressEnabled', allow: [`${allowedIp}/32`, 'localhost'] });
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

let backend: VMBackend;
let session: BackendSession | undefined;
let listener: ChildProcess | undefined;
let hostServer: Server | undefined;
let hostPort = 0;

function iptablesRules(): string {
  return spawnSync('iptables', ['-S'], { encoding: 'utf8' }).stdout;
}

async function hostConnect(address: string, port: number): Promise<string> {
  return await new Promise<string>((resolve) => {
    const c = connect(port, address);
    c.setTimeout(5000, () => {
      c.destroy();
      resolve('timeout');
    });
    c.once('data', (d) => {
      resolve(String(d));
      c.destroy();
    });
    c.once('error', (e) => resolve(e.message));
  });
}

describe('VMBackend: egress allow-list', () => {
  beforeAll(async () => {
    ip('netns', 'add', ns);
    ip('link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', nsVeth);
    ip('link', 'set', nsVeth, 'netns', ns);
    ip('addr', 'add', `${gateway}/24`, 'dev', hostVeth);
    ip('link', 'set', hostVeth, 'up');
    ip('route', 'add', `${deniedIp}/32`, 'dev', hostVeth);
    for (const cmd of [
      ['addr', 'add', `${allowedIp}/24`, 'dev', nsVeth],
      ['addr', 'add', `${deniedIp}/32`, 'dev', nsVeth],
      ['link', 'set', nsVeth, 'up'],
      ['link', 'set', 'lo', 'up'],
      ['route', 'add', 'default', 'via', gateway],
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
    hostServer = createServer((socket) => socket.end('host\n'));
    await new Promise<void>((resolve) => hostServer?.listen(0, '0.0.0.0', resolve));
    hostPort = (hostServer.address() as { port: number }).port;

    backend = makeVmBackend();
    // The EgressEnabled machine has a NIC, so it has its own snapshot (built once, cached on disk).
    await backend.prepare({
      poolName: 'vm-test',
      ownerId,
      containerType: 'PythonLTS',
      limits: SessionLimitsSchema.parse(VM_LIMITS),
      network,
    });
    session = await backend.create({ ...vmSpec(ownerId, { egress: 'EgressEnabled' }), network }, { onExit: () => undefined });
  }, CREATE_TIMEOUT_MS);

  afterAll(async () => {
    await backend?.close();
    listener?.kill('SIGKILL');
    hostServer?.close();
    spawnSync('ip', ['link', 'del', hostVeth]);
    spawnSync('ip', ['netns', 'del', ns]);
    expect(iptablesRules()).not.toMatch(/SANDPOOL-VM-S\d/);
  });

  it('installs a per-session chain hooked right after the shared range rule', () => {
    const output = iptablesRules()
      .split('\n')
      .filter((l) => l.startsWith('-A OUTPUT'));
    const range = output.findIndex((l) => l.includes('-j SANDPOOL-VM-EGRESS'));
    expect(range).toBeGreaterThanOrEqual(0);
    expect(output[range + 1]).toMatch(/--uid-owner \d+ -j SANDPOOL-VM-S\d+$/);
    expect(iptablesRules()).toMatch(new RegExp(`-A SANDPOOL-VM-S\\d+ -d ${allowedIp}/32 -j ACCEPT`));
  });

  it(
    'reaches an allowed address, not a non-allowed one, and not the host',
    async () => {
      // Both stand-in listeners and the host listener answer from the host, so every refusal below
      // comes from the firewall, not from the stand-in.
      expect(await hostConnect(allowedIp, 8000)).toBe('internet\n');
      expect(await hostConnect(deniedIp, 8000)).toBe('internet\n');
      expect(await hostConnect('127.0.0.1', hostPort)).toBe('host\n');
      if (session === undefined) throw new Error('no session');
      // One Python execution, all probes: each guest connection costs seconds under TCG.
      const code = [
        'import json, socket',
        'def probe(addr, port):',
        '    try:',
        '        s = socket.create_connection((addr, port), timeout=10)',
        '        data = s.recv(64).decode(); s.close(); return data',
        '    except Exception as e:',
        '        return type(e).__name__',
        `print(json.dumps([probe("${allowedIp}", 8000), probe("${deniedIp}", 8000), probe("10.0.2.2", ${hostPort}), probe("${gateway}", ${hostPort})]))`,
      ].join('\n');
      const outcome = await backend.execute(session, { language: 'python', code, timeoutMs: 120_000, outputMaxBytes: 10_000 });
      expect(outcome.status, outcome.stderr).toBe('Succeeded');
      const [allowed, denied, hostLoopback, hostAddress] = JSON.parse(outcome.stdout.trim()) as string[];
      expect(allowed).toBe('internet\n');
      expect(denied).not.toBe('internet\n');
      expect(hostLoopback).not.toBe('host\n');
      expect(hostAddress).not.toBe('host\n');
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'removes the per-session chain when the session is destroyed, idempotently',
    async () => {
      if (session === undefined) throw new Error('no session');
      expect(iptablesRules()).toMatch(/SANDPOOL-VM-S\d/);
      await backend.destroy(session, { reason: 'stopped' });
      await backend.destroy(session, { reason: 'stopped' });
      session = undefined;
      expect(iptablesRules()).not.toMatch(/SANDPOOL-VM-S\d/);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'reaps the chain of a session that no longer exists on prepare',
    async () => {
      // As a crashed owner would leave it: no session directory, no process with that uid.
      const uid = SESSION_UID_LAST - 7;
      await installAllowList(uid, [`${allowedIp}/32`]);
      expect(iptablesRules()).toContain(`SANDPOOL-VM-S${uid}`);
      await backend.prepare({
        poolName: 'vm-test',
        ownerId,
        containerType: 'PythonLTS',
        limits: SessionLimitsSchema.parse(VM_LIMITS),
        network: NetworkPolicySchema.parse({}),
      });
      expect(iptablesRules()).not.toContain(`SANDPOOL-VM-S${uid}`);
    },
    CREATE_TIMEOUT_MS,
  );

  it('rejects malformed allow-list entries with InvalidOptionsError naming them', async () => {
    for (const bad of ['10.0.0.0/33', '256.1.1.1', '198.51.100.1/24', '1.2.3', '::1', 'bad_name!']) {
      const policy = NetworkPolicySchema.parse({ egress: 'EgressEnabled', allow: [bad] });
      const attempt = backend.prepare({
        poolName: 'vm-test',
        ownerId,
        containerType: 'PythonLTS',
        limits: SessionLimitsSchema.parse(VM_LIMITS),
        network: policy,
      });
      await expect(attempt).rejects.toBeInstanceOf(InvalidOptionsError);
      await expect(attempt).rejects.toThrow(bad);
    }
  });
});
