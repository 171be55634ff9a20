/** Crash-recovery bookkeeping without QEMU: only dead owners' directories go, and only our QEMU is killed. */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { createSessionDir, processStartTime, reapDeadOwners, sessionDirName } from '../../backends/vm/run-dir.js';

const runDir = mkdtempSync(join(tmpdir(), 'sp-rundir-'));
afterAll(() => rmSync(runDir, { recursive: true, force: true }));

function deadPid(): number {
  const result = spawnSync('true');
  return result.pid ?? 999_999;
}

describe('VM run directories', () => {
  it('reaps directories of dead owners, keeps live ones, and never kills a stranger', async () => {
    const live = createSessionDir(runDir, { ownerId: 'live', sessionId: 'a', poolName: 'p' });
    const dead = join(runDir, sessionDirName('dead', 'b'));
    mkdirSync(dead);
    writeFileSync(join(dead, 'disk.qcow2'), 'overlay');
    // A process that is not ours, recorded as the "QEMU" of the dead owner: it must survive.
    const stranger = spawn('sleep', ['30']);
    writeFileSync(
      join(dead, 'state.json'),
      JSON.stringify({
        version: 1,
        ownerId: 'dead',
        ownerPid: deadPid(),
        ownerStartTime: '1',
        sessionId: 'b',
        poolName: 'p',
        qemuPid: stranger.pid,
      }),
    );
    // A recycled pid: our own pid with another start time is a dead owner too.
    const recycled = join(runDir, sessionDirName('recycled', 'c'));
    mkdirSync(recycled);
    writeFileSync(
      join(recycled, 'state.json'),
      JSON.stringify({
        version: 1,
        ownerId: 'recycled',
        ownerPid: process.pid,
        ownerStartTime: 'not-now',
        sessionId: 'c',
        poolName: 'p',
      }),
    );
    // Something else in the run dir that is not a session directory is left alone.
    mkdirSync(join(runDir, 'unrelated'));

    const report = reapDeadOwners(runDir);
    expect(report.removed.sort()).toEqual([dead, recycled].sort());
    expect(report.killedQemu).toEqual([]);
    expect(existsSync(live.dir)).toBe(true);
    expect(existsSync(join(runDir, 'unrelated'))).toBe(true);
    expect(stranger.exitCode).toBeNull();
    stranger.kill();
    expect(live.state.ownerStartTime).toBe(processStartTime(process.pid));
  });

  it('keeps a fresh directory whose state file is not written yet', () => {
    const fresh = join(runDir, sessionDirName('fresh', 'd'));
    mkdirSync(fresh);
    expect(reapDeadOwners(runDir).removed).not.toContain(fresh);
    expect(reapDeadOwners(runDir, 0).removed).toContain(fresh);
  });
});
