/**
 * The out-of-process attack suite on the vm backend (QEMU; TCG on the CI machine), through a real
 * SessionPool. Probes are batched into few executions because every guest instruction is emulated.
 * Runs when setup built the guest image (like test/vm); under CI=true a missing image fails.
 * Sessions are restored from the warm snapshot shared with test/vm (same machine settings).
 */

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { VMBackend } from '../../backends/vm/index.js';
import { SessionPool } from '../../src/index.js';
import { CI } from '../container/helpers.js';
import { CREATE_TIMEOUT_MS, makeVmBackend, VM_LIMITS, vmImageBuilt } from '../vm/vm-test-config.js';
import {
  Bystander,
  expectHostHealthy,
  expectUnreachable,
  startHostFixtures,
  type HostFixtures,
} from '../suites/sandbox-attacks/harness.js';
import { fileApiAttacks } from '../suites/sandbox-attacks/file-api-attacks.js';
import { hostReachProbe, networkProbe, probeResult } from '../suites/sandbox-attacks/probe-scripts.js';
import { resourceBombs } from '../suites/sandbox-attacks/resource-bombs.js';

const built = vmImageBuilt();
if (!built && CI)
  throw new Error('the VM guest image is not built, but the VM attack suite must run under CI (npm run setup builds it)');
const T = 300_000;
const PIDS = 64;

/** QEMU processes whose command line names this run directory (ours only). */
function qemuProcessesUnder(runDir: string): string[] {
  try {
    return execFileSync('pgrep', ['-f', `qemu-system.*${runDir}`], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

describe.skipIf(!built)('vm sessions under attack (through a SessionPool)', () => {
  const runDir = mkdtempSync(join(tmpdir(), 'sp-sec-vm-'));
  let backend: VMBackend;
  let fixtures: HostFixtures;
  let pool: SessionPool;
  let bystander: Bystander;

  beforeAll(async () => {
    fixtures = await startHostFixtures();
    backend = makeVmBackend({ runDir });
    pool = new SessionPool({
      name: 'sec-vm',
      backend,
      containerType: 'PythonLTS',
      readySessionInstances: 1,
      maxConcurrentSessions: 3,
      cooldownPeriodInSeconds: 900,
      limits: { ...VM_LIMITS, pids: PIDS, outputMaxBytes: 64 << 10, executionTimeoutSeconds: 120, maxFileSizeBytes: 4 << 20 },
    });
    await pool.start();
    bystander = new Bystander(pool);
    await bystander.plant();
  }, CREATE_TIMEOUT_MS);

  afterAll(async () => {
    await pool?.close();
    await fixtures?.close();
    expect(qemuProcessesUnder(runDir)).toEqual([]);
    expect(readdirSync(runDir).filter((d) => d.startsWith('s-'))).toEqual([]); // overlays and sockets wiped
    rmSync(runDir, { recursive: true, force: true });
  }, 120_000);

  const afterAttack = async () => {
    await expectHostHealthy(pool);
    await bystander.expectHealthy();
    // No stray QEMU: one process per live session, never more.
    await expect
      .poll(
        () => {
          const s = pool.stats();
          return (
            backend.sessionsInfo().length <= s.allocated + s.ready + s.pending &&
            qemuProcessesUnder(runDir).length === backend.sessionsInfo().length
          );
        },
        { timeout: 60_000, interval: 500 },
      )
      .toBe(true);
    expect(fixtures.hits()).toBe(0);
  };

  it(
    'sees nothing of the host and holds no privilege: files, processes, mounts, devices, modules',
    async () => {
      const session = await pool.acquire(SessionPool.generateIdentifier());
      const run = await session.execute({ code: hostReachProbe(fixtures.facts), timeoutInSeconds: 240 });
      expect(run.status, run.stderr).toBe('Succeeded');
      const r = probeResult(run.stdout);
      expect(r['hostCanaryExists']).toBe(false);
      expect(r['repoFileExists']).toBe(false);
      // No container engine socket (root on the host) is reachable from inside.
      for (const sock of [
        '/run/podman/podman.sock',
        '/var/run/docker.sock',
        '/run/docker.sock',
        '/run/containerd/containerd.sock',
      ]) {
        expect(r[`engine ${sock}`], sock).toBe(false);
      }
      const hostShadow = createHash('sha256').update(readFileSync('/etc/shadow')).digest('hex');
      expect(r['shadowHash']).not.toBe(hostShadow);
      expect((r['proc'] as { canaryHits: string[] }).canaryHits).toEqual([]);
      expect(r['uid']).toBe(1000);
      const mountinfo = String(r['mountinfo']);
      // No host file system is shared into the guest: no 9p, virtiofs, nfs or fuse mounts.
      expect(mountinfo).not.toMatch(/ - (9p|virtiofs|nfs4?|fuse\S*) /);
      for (const key of ['mount', 'umountRoot', 'unshareMountNs', 'finitModule', 'initModule', 'kexecLoad']) {
        expect(String(r[key]), key).toMatch(/^ERR E(PERM|ACCES|NOSYS)/);
      }
      expect(String(r['ptraceHostPid'])).toMatch(/^ERR E(SRCH|PERM)/);
      expect(String(r['killHostPid'])).toMatch(/^ERR (ProcessLookupError|PermissionError)/);
      expect(String(r['rawIcmp'])).toMatch(/^ERR PermissionError/);
      expect(String(r['packetSocket'])).toMatch(/^ERR PermissionError/);
      expect(String(r['mknodBlock'])).toMatch(/^ERR PermissionError/);
      for (const key of ['sysrq', 'coreStorePattern'])
        expect(String(r[key]), key).toMatch(/^ERR (PermissionError|FileNotFoundError|OSError)/);
      // The guest's own disks exist, but the unprivileged session cannot open them (nor anything like /dev/mem).
      for (const name of [
        '/dev/mem',
        '/dev/kmem',
        '/dev/port',
        '/dev/kmsg',
        '/dev/sda',
        '/dev/vda',
        '/dev/nvme0n1',
        '/dev/kvm',
        '/dev/fuse',
      ]) {
        expect(String(r[`open ${name}`]), name).toMatch(/^ERR (FileNotFoundError|PermissionError)/);
      }
      await session.stop();
      await afterAttack();
    },
    T,
  );

  it(
    'has no network device: no host port, embedding server, 10.0.2.2, gateway or metadata address',
    async () => {
      const session = await pool.acquire(SessionPool.generateIdentifier());
      const run = await session.execute({ code: networkProbe(fixtures.facts), timeoutInSeconds: 240 });
      expect(run.status, run.stderr).toBe('Succeeded');
      const r = probeResult(run.stdout);
      expect(r['interfaces']).toEqual(['lo']);
      expectUnreachable(
        r,
        fixtures.facts.targets.map(([label]) => label),
      );
      await session.stop();
      await afterAttack();
    },
    T,
  );

  resourceBombs(
    () => ({
      pool,
      afterAttack,
      memoryMb: VM_LIMITS.memoryMb,
      diskMb: VM_LIMITS.diskMb,
      outputMaxBytes: 64 << 10,
      pids: PIDS,
      diskFill: 'allocate',
    }),
    T,
  );

  fileApiAttacks(() => ({ pool, afterAttack }), T);
});
