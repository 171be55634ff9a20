/**
 * Crash safety and the slow paths: an owner process killed with SIGKILL leaves no QEMU running
 * (parent-death signal) and its files are reaped by the next prepare(); a snapshot that cannot be
 * restored makes create() cold-boot instead and say why, with the pool's limits and network
 * settings applied to the new machine.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, describe, expect, it } from 'vitest';

import { NetworkPolicySchema, SessionLimitsSchema } from '../../src/options.js';
import { loadImage } from '../../backends/vm/vm-environment.js';
import { qemuVersion, snapshotKey } from '../../backends/vm/snapshot.js';
import { CREATE_TIMEOUT_MS, makeVmBackend, VM_LIMITS, vmSpec } from './vm-test-config.js';

const cacheDir = process.env['SANDPOOL_CACHE_DIR'] ?? '/var/cache/sandpool';
const cleanup: string[] = [];

afterAll(() => {
  for (const dir of cleanup) rmSync(dir, { recursive: true, force: true });
});

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('VM crash recovery', () => {
  it(
    "kills QEMU with its owner and reaps the dead owner's files on the next prepare()",
    async () => {
      const runDir = mkdtempSync(join(tmpdir(), 'sp-vm-'));
      cleanup.push(runDir);
      // A live owner's directory in the same run dir must survive the reaping.
      const live = makeVmBackend({ runDir });
      const liveSession = await live.create(vmSpec(`live-${randomUUID()}`), { onExit: () => undefined });
      const fixture = fileURLToPath(new URL('./fixtures/vm-owner.ts', import.meta.url));
      const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
        env: { ...process.env, SANDPOOL_VM_RUN_DIR: runDir },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      try {
        const line = await new Promise<string>((resolve, reject) => {
          let out = '';
          child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
            out += chunk;
            if (out.includes('\n')) resolve(out.split('\n')[0] ?? '');
          });
          child.on('exit', (code) => reject(new Error(`owner exited early with ${code}`)));
        });
        const { pid, dir } = JSON.parse(line) as { pid: number; dir: string };
        expect(pidAlive(pid)).toBe(true);
        child.kill('SIGKILL');
        const deadline = Date.now() + 10_000;
        while (pidAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        expect(pidAlive(pid)).toBe(false);
        expect(existsSync(dir)).toBe(true); // files stay until someone reaps them

        const next = makeVmBackend({ runDir, snapshots: false });
        await next.prepare({
          poolName: 'vm-test',
          ownerId: `next-${randomUUID()}`,
          containerType: 'PythonLTS',
          limits: SessionLimitsSchema.parse(VM_LIMITS),
          network: NetworkPolicySchema.parse({}),
        });
        await next.close();
        expect(existsSync(dir)).toBe(false);
        const [liveInfo] = live.sessionsInfo();
        expect(existsSync(liveInfo!.dir)).toBe(true);
        expect(pidAlive(liveInfo!.pid!)).toBe(true);
        await live.destroy(liveSession, { reason: 'stopped' });
      } finally {
        child.kill('SIGKILL');
        await live.close();
      }
    },
    CREATE_TIMEOUT_MS,
  );

  it(
    'cold-boots when the snapshot cannot be restored, says why, and applies limits and egress',
    async () => {
      // A private cache whose snapshot for these settings is garbage.
      const privateCache = mkdtempSync(join(tmpdir(), 'sp-vmcache-'));
      cleanup.push(privateCache);
      if (process.getuid?.() === 0) {
        // mkdtemp makes it 0700; a private cache is refused with a clear message while QEMU runs
        // as its own uid...
        const refused = makeVmBackend({
          cacheDir: privateCache,
          imageManifest: join(cacheDir, 'vm', 'current.json'),
          accelerator: 'tcg',
        });
        await expect(refused.create(vmSpec(`refused-${randomUUID()}`), { onExit: () => undefined })).rejects.toThrow(
          /not readable by the unprivileged QEMU user/,
        );
        await refused.close();
        chmodSync(privateCache, 0o755); // ...and accepted once QEMU may read it.
      }
      const manifest = join(cacheDir, 'vm', 'current.json');
      const image = loadImage(manifest);
      const limits = SessionLimitsSchema.parse({ memoryMb: 384, cpus: 2, diskMb: 256 });
      const backend = makeVmBackend({ cacheDir: privateCache, imageManifest: manifest, accelerator: 'tcg' });
      const machine = { accelerator: 'tcg' as const, memoryMb: 384, cpus: 2, egress: true };
      const key = snapshotKey({ image, machine, diskMb: 256, qemuVersion: await qemuVersion('qemu-system-x86_64') });
      const snapDir = join(privateCache, 'vm', 'snapshots', key);
      mkdirSync(snapDir, { recursive: true });
      writeFileSync(join(snapDir, 'state.bin'), 'not a migration stream');
      writeFileSync(join(snapDir, 'ram.bin'), Buffer.alloc(4096));
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(snapDir, 'disk.qcow2'), '256M']);
      writeFileSync(
        join(snapDir, 'meta.json'),
        JSON.stringify({ key, ramBytes: 4096, stateBytes: 22, bootMs: 0, saveMs: 0, createdAt: '', qemuVersion: '' }),
      );
      try {
        const spec = { ...vmSpec(`fallback-${randomUUID()}`, { limits, egress: 'EgressEnabled' }) };
        const session = await backend.create(spec, { onExit: () => undefined });
        expect(backend.lastStart?.mode).toBe('boot');
        // QEMU itself rejected the stream (not a missing file or a bad overlay).
        expect(backend.lastStart?.fallbackReason).toMatch(/QEMU exited|migration|load/i);
        const outcome = await backend.execute(session, {
          language: 'python',
          code:
            "import os\nmem = int(open('/proc/meminfo').readline().split()[1]) // 1024\n" +
            "(os.cpu_count(), mem, sorted(os.listdir('/sys/class/net')))",
          timeoutMs: 60_000,
          outputMaxBytes: 4096,
        });
        expect(outcome.status).toBe('Succeeded');
        const [cpus, memMb, nics] = JSON.parse(
          String(outcome.result).replace(/\(/g, '[').replace(/\)/g, ']').replace(/'/g, '"'),
        ) as [number, number, string[]];
        expect(cpus).toBe(2);
        expect(memMb).toBeGreaterThan(300); // MemTotal excludes what the kernel reserves for itself
        expect(memMb).toBeLessThanOrEqual(384);
        expect(nics).toEqual(['eth0', 'lo']);
        if (process.getuid?.() === 0) {
          // Egress is confined: the host's own services are unreachable, through slirp's host alias
          // (10.0.2.2 = the host's loopback) and through the host's real addresses.
          const accepted: string[] = [];
          const listener = createServer((socket) => {
            accepted.push(String(socket.remoteAddress));
            socket.destroy();
          });
          await new Promise<void>((resolve) => listener.listen(0, '0.0.0.0', resolve));
          const port = (listener.address() as AddressInfo).port;
          const hostIp = Object.values(networkInterfaces())
            .flat()
            .find((a) => a?.family === 'IPv4' && !a.internal)?.address;
          try {
            const probe = await backend.execute(session, {
              language: 'python',
              code:
                'import socket\ndef reach(host):\n    try:\n        socket.create_connection((host, ' +
                port +
                '), timeout=5).close()\n' +
                "        return 'connected'\n    except OSError as e:\n        return type(e).__name__\n" +
                `[reach('10.0.2.2'), reach('${hostIp ?? '10.0.2.2'}')]`,
              timeoutMs: 120_000,
              outputMaxBytes: 4096,
            });
            expect(probe.status).toBe('Succeeded');
            expect(String(probe.result)).not.toContain('connected');
            expect(accepted).toEqual([]);
          } finally {
            listener.close();
          }
        }
        await backend.destroy(session, { reason: 'stopped' });
      } finally {
        await backend.close();
      }
    },
    CREATE_TIMEOUT_MS,
  );
});
