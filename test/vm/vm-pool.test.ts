/**
 * A SessionPool on the VM backend, end to end: Ready sessions restored from the snapshot, get-or-
 * create by identifier with state, files, a VM killed under the pool is replaced with reason
 * `failed`, and close() leaves no QEMU process or run directory behind.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { SessionPool, type SessionDestroyedEvent } from '../../src/index.js';
import { CREATE_TIMEOUT_MS, makeVmBackend, TEST_TIMEOUT_MS, VM_LIMITS } from './vm-test-config.js';

const runDir = mkdtempSync(join(tmpdir(), 'sp-vmpool-'));
const backend = makeVmBackend({ runDir });
const pool = new SessionPool({
  name: 'vm-e2e',
  backend,
  containerType: 'PythonLTS',
  readySessionInstances: 1,
  maxConcurrentSessions: 3,
  cooldownPeriodInSeconds: 600,
  limits: { ...VM_LIMITS, executionTimeoutSeconds: 60 },
});
const destroyed: SessionDestroyedEvent[] = [];
pool.on('sessionDestroyed', (e) => destroyed.push(e));

afterAll(async () => {
  await pool.close();
  rmSync(runDir, { recursive: true, force: true });
});

function qemuPids(): number[] {
  return backend.sessionsInfo().flatMap((s) => (s.pid === undefined ? [] : [s.pid]));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('SessionPool on the vm backend', () => {
  it(
    'serves identifiers from restored VMs, with state and files',
    async () => {
      await pool.start();
      const a = await pool.acquire('alice');
      await a.execute({ code: 'import numpy as np\nsecret = np.arange(4).sum()' });
      await a.uploadFile('in.txt', 'from the host');
      const again = await pool.acquire('alice');
      expect(again.id).toBe(a.id);
      const out = await again.execute({ code: "int(secret), open('/mnt/data/in.txt').read()" });
      expect(out.result).toBe("(6, 'from the host')");
      const b = await pool.acquire('bob-1');
      expect((await b.execute({ code: "'secret' in globals()" })).result).toBe(false);
    },
    CREATE_TIMEOUT_MS,
  );

  it(
    'replaces a session whose VM died, with reason failed',
    async () => {
      const s = await pool.acquire('victim');
      const [info] = backend.sessionsInfo().filter((x) => x.id === s.id);
      process.kill(info!.pid!, 'SIGKILL');
      await expect
        .poll(() => destroyed.some((e) => e.identifier === 'victim' && e.reason === 'failed'), { timeout: 15_000 })
        .toBe(true);
      const fresh = await pool.acquire('victim');
      expect(fresh.id).not.toBe(s.id);
      expect((await fresh.execute({ code: '1 + 1' })).result).toBe(2);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'close() leaves no QEMU process and no run directory behind',
    async () => {
      const pids = qemuPids();
      expect(pids.length).toBeGreaterThan(0);
      await pool.close();
      for (const pid of pids) expect(alive(pid)).toBe(false);
      expect(existsSync(runDir) ? readdirSync(runDir) : []).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});
