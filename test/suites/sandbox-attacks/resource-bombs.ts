/**
 * Resource bombs and runaway code against an out-of-process session: memory, fork, disk and output
 * bombs, an infinite loop (also one that swallows the interrupt), and a process left running after
 * its execution. Each must end in a clean Failed execution or a bounded result; the caller's
 * `afterAttack` then checks the host, the pool, a bystander and the engine for leaks.
 */

import { expect, it } from 'vitest';

import { SessionPool } from '../../../src/index.js';
import { probeResult } from './probe-scripts.js';

export interface BombContext {
  readonly pool: SessionPool;
  readonly afterAttack: () => Promise<void>;
  readonly memoryMb: number;
  readonly diskMb: number;
  readonly outputMaxBytes: number;
  readonly pids: number;
  /**
   * How the disk bomb fills the disk: 'write' writes and fsyncs 1 MiB blocks until ENOSPC;
   * 'allocate' asks for 4x the cap with posix_fallocate first (a VM under TCG writes too slowly to
   * fill a 1 GiB disk within the test's budget), then writes 32 MiB for real.
   */
  readonly diskFill?: 'write' | 'allocate';
}

export function resourceBombs(context: () => BombContext, timeoutMs: number): void {
  it(
    'memory bomb: a Failed execution, and the pool carries on',
    async () => {
      const { pool, afterAttack, memoryMb } = context();
      const session = await pool.acquire(SessionPool.generateIdentifier());
      const bomb = await session.execute({
        code: `hog = []\nwhile True:\n    hog.append(bytearray(16 * 1024 * 1024))\n    assert len(hog) < ${(memoryMb * 8) / 16}, 'no memory limit'`,
        timeoutInSeconds: 120,
      });
      expect(bomb.status).toBe('Failed');
      expect(bomb.stderr + bomb.stdout).not.toMatch(/no memory limit/);
      expect(['restarted', 'replaced']).toContain(bomb.sessionState);
      await session.stop().catch(() => undefined);
      await afterAttack();
    },
    timeoutMs,
  );

  it(
    'fork bomb: stopped at the pids limit, bounded and answered',
    async () => {
      const { pool, afterAttack, pids } = context();
      const session = await pool.acquire(SessionPool.generateIdentifier());
      const bomb = await session.execute({
        code: [
          'import os, time, json',
          'children, err = 0, None',
          // Bounded a little past the limit so a missing limit fails fast instead of forking for hours.
          `while children < ${pids + 40}:`,
          '    try:',
          '        pid = os.fork()',
          '    except OSError as e:',
          '        err = e.errno',
          '        break',
          '    if pid == 0:',
          '        time.sleep(600)',
          '        os._exit(0)',
          '    children += 1',
          'print(json.dumps({"children": children, "errno": err}))',
        ].join('\n'),
        timeoutInSeconds: 120,
      });
      expect(bomb.status, bomb.stderr).toBe('Succeeded');
      const r = probeResult(bomb.stdout) as { children: number; errno: number };
      expect(r.children).toBeLessThan(pids);
      expect(r.errno).toBe(11); // EAGAIN
      // The children sleep for 10 minutes: stopping the session must take them all down with it.
      await session.stop();
      await afterAttack();
    },
    timeoutMs,
  );

  it(
    'disk bomb: writes stop at the disk cap, and the files API still works',
    async () => {
      const { pool, afterAttack, diskMb, diskFill = 'write' } = context();
      const session = await pool.acquire(SessionPool.generateIdentifier());
      const allocate = [
        "fd = os.open('/mnt/data/huge', os.O_WRONLY | os.O_CREAT, 0o600)",
        'try:',
        `    os.posix_fallocate(fd, 0, ${diskMb * 4} * 1024 * 1024); allocated = 'ok'`,
        'except OSError as e:',
        '    allocated = e.errno',
        'os.close(fd); os.unlink("/mnt/data/huge")',
      ];
      const fill = await session.execute({
        code: [
          'import os, json',
          "allocated = 'skipped'",
          ...(diskFill === 'allocate' ? allocate : []),
          'written, err = 0, None',
          "with open('/mnt/data/fill', 'wb') as f:",
          '    try:',
          `        while written < ${diskFill === 'allocate' ? 32 : diskMb * 4} * 1024 * 1024:`,
          "            f.write(b'\\0' * (1024 * 1024)); f.flush(); os.fsync(f.fileno())",
          '            written += 1024 * 1024',
          '    except OSError as e:',
          '        err = e.errno',
          'print(json.dumps({"written": written, "errno": err, "allocated": allocated}))',
        ].join('\n'),
        timeoutInSeconds: 180,
      });
      expect(fill.status, fill.stderr).toBe('Succeeded');
      const r = probeResult(fill.stdout) as { written: number; errno: number | null; allocated: string | number };
      if (diskFill === 'write') {
        expect(r.errno).toBe(28); // ENOSPC
        expect(r.written).toBeLessThanOrEqual(diskMb * 1024 * 1024);
      } else {
        expect(r.allocated).toBe(28); // ENOSPC: four times the cap does not fit
        expect(r).toMatchObject({ written: 32 * 1024 * 1024, errno: null });
      }
      await session.deleteFile('fill');
      await session.uploadFile('after.txt', 'still works');
      expect((await session.fileInfo('after.txt')).sizeInBytes).toBe(11);
      await session.stop();
      await afterAttack();
    },
    timeoutMs,
  );

  it(
    'output bomb: stdout, stderr and the result are cut at the cap and marked',
    async () => {
      const { pool, afterAttack, outputMaxBytes } = context();
      const session = await pool.acquire(SessionPool.generateIdentifier());
      const bomb = await session.execute({
        code: "import sys\nfor i in range(400):\n    sys.stdout.write('x' * 65536)\n    sys.stderr.write('y' * 65536)\n'z' * (64 * 1024 * 1024)",
        timeoutInSeconds: 180,
      });
      expect(bomb.truncated).toEqual({ stdout: true, stderr: true });
      // The cap is per stream, plus at most a short truncation marker.
      expect(Buffer.byteLength(bomb.stdout)).toBeLessThanOrEqual(outputMaxBytes + 1024);
      expect(Buffer.byteLength(bomb.stderr)).toBeLessThanOrEqual(outputMaxBytes + 1024);
      expect(JSON.stringify(bomb.result).length).toBeLessThan(8 * 1024 * 1024);
      const after = await session.execute({ code: '6 * 7' });
      expect(after.result).toBe(42);
      await session.stop();
      await afterAttack();
    },
    timeoutMs,
  );

  it(
    'long-running code: timed out, interrupted even when it swallows the interrupt, session usable',
    async () => {
      const { pool, afterAttack } = context();
      const session = await pool.acquire(SessionPool.generateIdentifier());
      const spin = await session.execute({ code: 'while True:\n    pass', timeoutInSeconds: 3 });
      expect(spin).toMatchObject({ status: 'Failed', error: { code: 'SANDPOOL_EXECUTION_TIMEOUT' } });
      const stubborn = await session.execute({
        code: 'import time\nwhile True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        continue',
        timeoutInSeconds: 3,
      });
      expect(stubborn).toMatchObject({ status: 'Failed', error: { code: 'SANDPOOL_EXECUTION_TIMEOUT' } });
      const after = await session.execute({ code: '1 + 1', timeoutInSeconds: 120 });
      expect(after).toMatchObject({ status: 'Succeeded', result: 2 });
      await session.stop();
      await afterAttack();
    },
    timeoutMs,
  );

  it(
    'a background process that outlives its execution dies with the session',
    async () => {
      const { pool, afterAttack } = context();
      const session = await pool.acquire(SessionPool.generateIdentifier());
      const spawn = await session.execute({
        code: "import subprocess\np = subprocess.Popen(['sh', '-c', 'while :; do :; done'], start_new_session=True)\np.pid",
      });
      expect(spawn.status, spawn.stderr).toBe('Succeeded');
      const next = await session.execute({ code: '2 + 2' });
      expect(next.result).toBe(4);
      await session.stop();
      await afterAttack();
    },
    timeoutMs,
  );
}
