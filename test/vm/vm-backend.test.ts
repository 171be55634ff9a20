/**
 * VM-specific behaviour on real QEMU (TCG here): the channel, files, no network by default, guest
 * death, cleanup, and restore from the warm snapshot. Sessions come from the snapshot the
 * conformance file shares (same settings), so each create takes about a second.
 */
import { existsSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { BackendSession, ExecuteRequest, SessionExit } from '../../src/backend.js';
import { SandpoolError } from '../../src/errors.js';
import { NetworkPolicySchema, SessionLimitsSchema } from '../../src/options.js';
import type { VMBackend } from '../../backends/vm/index.js';
import { CREATE_TIMEOUT_MS, makeVmBackend, TEST_TIMEOUT_MS, VM_LIMITS, vmSpec } from './vm-test-config.js';

const ownerId = `vmtest-${randomUUID()}`;
let backend: VMBackend;
const logs: string[] = [];

function python(code: string, timeoutMs = 60_000): ExecuteRequest {
  return { language: 'python', code, timeoutMs, outputMaxBytes: 1 << 20 };
}

async function* chunks(...parts: string[]): AsyncIterable<Uint8Array> {
  for (const part of parts) yield Buffer.from(part);
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<string> {
  const buffers: Buffer[] = [];
  for await (const chunk of body) buffers.push(Buffer.from(chunk));
  return Buffer.concat(buffers).toString('utf8');
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (predicate()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return predicate();
}

describe('VMBackend on QEMU', () => {
  beforeAll(async () => {
    backend = makeVmBackend({ onLog: (e) => logs.push(`${e.level}: ${e.message}`) });
    await backend.prepare({
      poolName: 'vm-test',
      ownerId,
      containerType: 'PythonLTS',
      limits: SessionLimitsSchema.parse(VM_LIMITS),
      network: NetworkPolicySchema.parse({}),
    });
  }, CREATE_TIMEOUT_MS);

  afterAll(async () => {
    await backend?.close();
  });

  it('says which accelerator it uses, and warns when it is TCG', async () => {
    const { accelerator, reason } = await backend.accelerator();
    expect(['kvm', 'whpx', 'hvf', 'tcg']).toContain(accelerator);
    expect(reason.length).toBeGreaterThan(0);
    if (accelerator === 'tcg') expect(logs.some((l) => l.startsWith('warn:') && l.includes('TCG'))).toBe(true);
  });

  it(
    'restores sessions from the snapshot; the guest has no NIC and no host share, only the agent port',
    async () => {
      const spec = vmSpec(ownerId);
      const session = await backend.create(spec, { onExit: () => undefined });
      try {
        expect(backend.lastStart).toMatchObject({ sessionId: spec.sessionId, mode: 'snapshot' });
        const outcome = await backend.execute(
          session,
          python(
            "import os\nsorted(os.listdir('/sys/class/net')), sorted(os.listdir('/dev/virtio-ports')), " +
              "[l.split()[2] for l in open('/proc/mounts') if l.split()[2] in ('9p', 'virtiofs', 'nfs', 'cifs')]",
          ),
        );
        expect(outcome.status).toBe('Succeeded');
        expect(outcome.result).toBe("(['lo'], ['sandpool.agent'], [])");
        const [info] = backend.sessionsInfo().filter((s) => s.id === session.id);
        const cmdline = readFileSync(`/proc/${info?.pid}/cmdline`, 'utf8').split('\0');
        expect(cmdline).not.toContain('-netdev');
        expect(cmdline.some((a) => /virtfs|9p|vhost-user|virtiofs/.test(a))).toBe(false);
        expect(cmdline).toContain('-nodefaults');
        expect(cmdline).toContain('-sandbox');
        const uidOf = (pid: number | undefined): number =>
          Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? -1);
        // Clones of one snapshot must not share random state.
        const other = await backend.create(vmSpec(ownerId), { onExit: () => undefined });
        try {
          const code = python('import random, os\n(random.random(), os.urandom(8).hex())');
          if (process.getuid?.() === 0) {
            // Each QEMU runs as its own unprivileged uid, not as the root backend.
            const [otherInfo] = backend.sessionsInfo().filter((s) => s.id === other.id);
            expect(uidOf(info?.pid)).toBeGreaterThan(0);
            expect(uidOf(otherInfo?.pid)).toBeGreaterThan(0);
            expect(uidOf(info?.pid)).not.toBe(uidOf(otherInfo?.pid));
          }
          const [a, b] = await Promise.all([backend.execute(session, code), backend.execute(other, code)]);
          expect(a.status).toBe('Succeeded');
          expect(a.result).not.toEqual(b.result);
        } finally {
          await backend.destroy(other, { reason: 'stopped' });
        }
      } finally {
        await backend.destroy(session, { reason: 'stopped' });
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'restores by mapping the snapshot copy-on-write: clones share no state, and no guest write reaches the snapshot',
    async () => {
      const a = await backend.create(vmSpec(ownerId), { onExit: () => undefined });
      const restore = backend.lastStart;
      const b = await backend.create(vmSpec(ownerId), { onExit: () => undefined });
      try {
        expect(restore).toMatchObject({ mode: 'snapshot' });
        expect(restore?.restoreMs).toBeGreaterThan(0);
        expect(restore?.restoreMs).toBeLessThanOrEqual(restore?.ms ?? 0);
        const [infoA] = backend.sessionsInfo().filter((s) => s.id === a.id);
        const maps = readFileSync(`/proc/${infoA?.pid}/maps`, 'utf8');
        if (process.getuid?.() === 0) {
          // The RAM is the sealed copy of the snapshot, mapped privately (no 's' in the flags).
          const ram = maps.split('\n').filter((l) => l.includes('memfd:sandpool-snapshot-ram'));
          expect(ram.length).toBeGreaterThan(0);
          expect(ram.every((l) => l.split(/\s+/)[1]?.endsWith('p'))).toBe(true);
        }
        // A writes a file, a global and a large buffer (guest RAM pages); B sees none of it.
        const scribble = await backend.execute(
          a,
          python(
            "open('/mnt/data/mine.txt', 'w').write('a')\nimport builtins\nbuiltins.SANDPOOL_MARK = 'a'\n" +
              "buf = bytearray(b'x' * (64 << 20))\nlen(buf)",
          ),
        );
        expect(scribble).toMatchObject({ status: 'Succeeded', result: 64 << 20 });
        const look = python("import os, builtins\n(os.listdir('/mnt/data'), getattr(builtins, 'SANDPOOL_MARK', None))");
        expect((await backend.execute(b, look)).result).toBe('([], None)');
        // A session restored after A scribbled starts from the pristine snapshot too.
        const c = await backend.create(vmSpec(ownerId), { onExit: () => undefined });
        try {
          expect((await backend.execute(c, look)).result).toBe('([], None)');
        } finally {
          await backend.destroy(c, { reason: 'stopped' });
        }
      } finally {
        await backend.destroy(a, { reason: 'stopped' });
        await backend.destroy(b, { reason: 'stopped' });
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'runs the scientific stack: BLAS through numpy and a matplotlib figure as an image result',
    async () => {
      // Under TCG with QEMU's default CPU model OpenBLAS picked kernels that died with SIGILL.
      const session = await backend.create(vmSpec(ownerId), { onExit: () => undefined });
      try {
        const matmul = await backend.execute(
          session,
          python('import numpy as np\nint((np.ones((200, 200)) @ np.ones((200, 200)))[0, 0])'),
        );
        expect(matmul).toMatchObject({ status: 'Succeeded', result: 200, sessionState: 'kept' });
        const figure = await backend.execute(session, python('import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()'));
        expect(figure.status).toBe('Succeeded');
        expect(figure.result).toMatchObject({ type: 'image', format: 'png' });
      } finally {
        await backend.destroy(session, { reason: 'stopped' });
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'moves files under /mnt/data through the agent, and refuses a planted symlink',
    async () => {
      const session = await backend.create(vmSpec(ownerId), { onExit: () => undefined });
      try {
        const files = backend.files;
        const info = await files.upload(session, 'dir/hello.txt', chunks('hello ', 'vm'), { maxBytes: 1 << 20 });
        expect(info).toMatchObject({ name: 'hello.txt', path: 'dir/hello.txt', type: 'file', sizeInBytes: 8 });
        // Session code is an unprivileged user inside the guest: it cannot take the VM down.
        const unprivileged = await backend.execute(
          session,
          python(
            'import os\ndef denied(f):\n    try:\n        f()\n        return False\n    except PermissionError:\n        return True\n' +
              "(os.getuid() != 0, denied(lambda: os.kill(1, 9)), denied(lambda: open('/dev/ttyS0', 'w')))",
          ),
        );
        expect(unprivileged.result).toBe('(True, True, True)');
        const seen = await backend.execute(session, python("open('/mnt/data/dir/hello.txt').read()"));
        expect(seen.result).toBe('hello vm');
        await backend.execute(
          session,
          python("open('/mnt/data/out.csv', 'w').write('a,b\\n1,2\\n')\nimport os\nos.symlink('/etc/shadow', '/mnt/data/link')"),
        );
        const listed = await files.list(session, { path: '', recursive: true });
        expect(listed.map((f) => f.path).sort()).toEqual(['dir', 'dir/hello.txt', 'out.csv']);
        const download = await files.download(session, 'out.csv', {});
        expect(await readAll(download.body)).toBe('a,b\n1,2\n');
        await expect(files.download(session, 'link', {})).rejects.toMatchObject({ code: 'SANDPOOL_INVALID_PATH' });
        await files.delete(session, 'dir/hello.txt');
        await expect(files.stat(session, 'dir/hello.txt')).rejects.toMatchObject({ code: 'SANDPOOL_FILE_NOT_FOUND' });
        await expect(files.upload(session, 'big.bin', chunks('x'.repeat(4096)), { maxBytes: 100 })).rejects.toMatchObject({
          code: 'SANDPOOL_FILE_TOO_LARGE',
        });
      } finally {
        await backend.destroy(session, { reason: 'stopped' });
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'fails a running execution fast and reports the session failed when QEMU dies',
    async () => {
      let exit: SessionExit | undefined;
      const session: BackendSession = await backend.create(vmSpec(ownerId), { onExit: (e) => (exit = e) });
      const [info] = backend.sessionsInfo().filter((s) => s.id === session.id);
      expect(info?.pid).toBeGreaterThan(0);
      const running = backend.execute(session, python('import time\ntime.sleep(120)', 150_000));
      await new Promise((r) => setTimeout(r, 1000));
      const killedAt = Date.now();
      process.kill(info!.pid!, 'SIGKILL');
      const error: unknown = await running.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(Date.now() - killedAt).toBeLessThan(10_000);
      expect(SandpoolError.is(error)).toBe(true);
      expect(await waitFor(() => exit !== undefined, 5000)).toBe(true);
      expect(exit?.reason).toBe('failed');
      expect(existsSync(info!.dir)).toBe(false);
      await expect(backend.execute(session, python('1'))).rejects.toMatchObject({ code: 'SANDPOOL_SESSION_NOT_FOUND' });
      await backend.destroy(session, { reason: 'failed' }); // idempotent after death
      await expect(backend.execute(session, python('1'))).rejects.toMatchObject({ code: 'SANDPOOL_SESSION_NOT_FOUND' });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'leaves no QEMU process, overlay or socket behind after destroy',
    async () => {
      const session = await backend.create(vmSpec(ownerId), { onExit: () => undefined });
      const [info] = backend.sessionsInfo().filter((s) => s.id === session.id);
      expect(existsSync(`${info!.dir}/disk.qcow2`)).toBe(true);
      expect(existsSync(`${info!.dir}/agent.sock`)).toBe(true);
      expect(await backend.execute(session, python('1'))).toMatchObject({ status: 'Succeeded' });
      await backend.destroy(session, { reason: 'cooldown' });
      await backend.destroy(session, { reason: 'cooldown' });
      expect(pidAlive(info!.pid!)).toBe(false);
      expect(existsSync(info!.dir)).toBe(false);
    },
    TEST_TIMEOUT_MS,
  );
});
