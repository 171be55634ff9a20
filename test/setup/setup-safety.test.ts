/**
 * What makes setup safe to interrupt and to run from nothing: locks whose dead holder is taken
 * over, removal of a half-built tree with its processes and mounts, stale temporary files, the
 * step runner naming the step that failed or was interrupted on its last line, and the up-front
 * refusal of a cache folder the VM's unprivileged QEMU cannot read.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import {
  holderAlive,
  mountsUnder,
  processesUsing,
  removeStaleTemps,
  removeTree,
  withLock,
} from '../../scripts/setup/lib/fs-safe.mjs';

const root = join(import.meta.dirname, '..', '..');
const isRoot = process.getuid?.() === 0;
const work = mkdtempSync(join(tmpdir(), 'sandpool-setup-test-'));
chmodSync(work, 0o755);
afterAll(() => rmSync(work, { recursive: true, force: true }));

const quiet = (): void => {};
/** The pid of a process that has exited. */
const deadPid = (): number => spawnSync('true').pid!;

describe('setup locks', () => {
  it('takes over a lock whose holder died, in the current and the old (plain pid) format', async () => {
    for (const record of [JSON.stringify({ pid: deadPid(), start: '1', boot: 'x' }), String(deadPid())]) {
      const lock = join(work, `dead-${Math.random()}.lock`);
      writeFileSync(lock, record);
      expect(holderAlive(record)).toBe(false);
      expect(await withLock(lock, quiet, async () => readFileSync(lock, 'utf8'))).toContain(String(process.pid));
      expect(existsSync(lock)).toBe(false);
    }
  });

  it('does not take a lock from a live holder, nor from a later process that reuses its pid', async () => {
    const lock = join(work, 'live.lock');
    const holder = spawn('sleep', ['30']);
    const start = readFileSync(`/proc/${holder.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const record = JSON.stringify({ pid: holder.pid, start, boot });
    writeFileSync(lock, record);
    expect(holderAlive(record)).toBe(true);
    // Same pid, another start time: a different process.
    expect(holderAlive(JSON.stringify({ pid: holder.pid, start: '1', boot }))).toBe(false);
    let ran = false;
    const waiting = withLock(lock, quiet, async () => {
      ran = true;
    });
    await new Promise((r) => setTimeout(r, 500));
    expect(ran).toBe(false);
    holder.kill('SIGKILL');
    await waiting;
    expect(ran).toBe(true);
  }, 20_000);
});

describe('removing what an interrupted step left', () => {
  it('stops processes still working in the tree, then removes it', async () => {
    const tree = join(work, 'half-built');
    mkdirSync(join(tree, 'root'), { recursive: true });
    const orphan = spawn('sleep', ['60'], { cwd: join(tree, 'root'), detached: true, stdio: 'ignore' });
    const exited = new Promise((resolve) => orphan.on('exit', (_code, signal) => resolve(signal)));
    await new Promise((r) => setTimeout(r, 100));
    expect(processesUsing(tree)).toContain(orphan.pid);
    await removeTree(tree);
    expect(existsSync(tree)).toBe(false);
    expect(await exited).toBe('SIGKILL');
  });

  it.runIf(isRoot)('unmounts file systems left mounted inside the tree (as a killed debootstrap leaves /proc)', async () => {
    const tree = join(work, 'with-mounts');
    mkdirSync(join(tree, 'root', 'proc'), { recursive: true });
    mkdirSync(join(tree, 'root', 'tmp'), { recursive: true });
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'sandpool-test', join(tree, 'root', 'tmp')]).status).toBe(0);
    writeFileSync(join(tree, 'root', 'tmp', 'file'), 'x');
    expect(mountsUnder(tree)).toEqual([join(tree, 'root', 'tmp')]);
    await removeTree(tree);
    expect(mountsUnder(tree)).toEqual([]);
    expect(existsSync(tree)).toBe(false);
  });

  it('removes temporary files whose writer is gone and keeps live ones', async () => {
    const dir = join(work, 'vm');
    mkdirSync(dir);
    writeFileSync(join(dir, `base-1.sqfs.tmp-${deadPid()}`), 'partial');
    mkdirSync(join(dir, `image-2.tmp-${deadPid()}`));
    writeFileSync(join(dir, `base-3.sqfs.tmp-${process.pid}`), 'ours, in progress');
    writeFileSync(join(dir, 'base-4.sqfs'), 'finished');
    await removeStaleTemps(dir);
    expect(spawnSync('ls', [dir], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)).toEqual([
      `base-3.sqfs.tmp-${process.pid}`,
      'base-4.sqfs',
    ]);
  });
});

describe('the setup runner', () => {
  const steps = join(work, 'steps');
  mkdirSync(steps);
  writeFileSync(join(steps, '10-fine.mjs'), "export default async ({ log }) => log('fine');\n");
  writeFileSync(
    join(steps, '20-breaks.mjs'),
    "export default async () => { if (process.env.BREAK === 'hang') { const { spawn } = await import('node:child_process');" +
      " const { run } = await import(process.env.RUN_LIB); await run('sleep', ['120']); } throw new Error('the disk is full'); };\n",
  );
  const env = (extra: Record<string, string>) => ({
    ...process.env,
    SANDPOOL_SETUP_STEPS_DIR: steps,
    SANDPOOL_CACHE_DIR: join(work, 'cache'),
    RUN_LIB: join(root, 'scripts', 'setup', 'lib', 'run.mjs'),
    ...extra,
  });
  const lastLine = (text: string) => text.trim().split('\n').at(-1);

  it('names the failed step on its last line', () => {
    const result = spawnSync(process.execPath, [join(root, 'scripts', 'setup.mjs')], { env: env({}), encoding: 'utf8' });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('[setup] 10-fine: fine');
    expect(result.stderr).toContain('step 20-breaks failed: the disk is full');
    expect(lastLine(result.stderr)).toBe('[setup] FAILED at step 20-breaks');
  }, 120_000);

  it('stops the step processes when interrupted and says where it stopped', async () => {
    const child = spawn(process.execPath, [join(root, 'scripts', 'setup.mjs')], { env: env({ BREAK: 'hang' }) });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const sleeper = (): string =>
      spawnSync('pgrep', ['-f', '-P', String(child.pid), 'sleep 120'], { encoding: 'utf8' }).stdout.trim();
    await expect.poll(() => stderr.includes('10-fine: fine') && sleeper() !== '', { timeout: 60_000 }).toBe(true);
    const pid = Number(sleeper());
    child.kill('SIGINT');
    const code = await new Promise((resolve) => child.on('exit', resolve));
    expect(code).toBe(130);
    expect(lastLine(stderr)).toMatch(/^\[setup\] interrupted \(SIGINT\) during step 20-breaks; run `npm run setup` again/);
    // The step's child ran in its own process group; setup killed it on the way out.
    await expect.poll(() => existsSync(`/proc/${pid}`), { timeout: 5_000 }).toBe(false);
  }, 120_000);

  it('refuses a cache folder too deep for the VM build sockets before doing any work', () => {
    const deep = join(work, 'd'.repeat(80));
    const result = spawnSync(process.execPath, [join(root, 'scripts', 'setup.mjs')], {
      env: env({ SANDPOOL_CACHE_DIR: deep }),
      encoding: 'utf8',
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/its path is too long \(\d+ bytes\) for the unix sockets/);
    expect(lastLine(result.stderr)).toBe('[setup] FAILED at step preflight');
    expect(existsSync(deep)).toBe(false);
  }, 120_000);

  it.runIf(isRoot)(
    'refuses a cache folder the VM backend cannot read before doing any work',
    () => {
      const privateDir = mkdtempSync(join(tmpdir(), 'sandpool-private-'));
      try {
        chmodSync(privateDir, 0o700);
        const cache = join(privateDir, 'cache');
        const result = spawnSync(process.execPath, [join(root, 'scripts', 'setup.mjs')], {
          env: env({ SANDPOOL_CACHE_DIR: cache }),
          encoding: 'utf8',
        });
        expect(result.status).toBe(1);
        expect(result.stderr).toContain(`${privateDir} (mode 700) is not searchable by other users`);
        expect(result.stderr).toContain('runs QEMU as an unprivileged uid');
        expect(lastLine(result.stderr)).toBe('[setup] FAILED at step preflight');
        expect(existsSync(cache)).toBe(false);
        // Without the VM backend the same folder is fine.
        const skipped = spawnSync(process.execPath, [join(root, 'scripts', 'setup.mjs')], {
          env: env({ SANDPOOL_CACHE_DIR: cache, SANDPOOL_SKIP_VM: '1' }),
          encoding: 'utf8',
        });
        expect(lastLine(skipped.stderr)).toBe('[setup] FAILED at step 20-breaks');
      } finally {
        rmSync(privateDir, { recursive: true, force: true });
      }
    },
    120_000,
  );
});
