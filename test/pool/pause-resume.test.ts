/**
 * The pool's pause, resume, snapshot and fork logic, at both checkpoint levels, over a fake backend
 * that keeps variables (test/helpers/pausable-fake-backend.ts). Real engines: the conformance suite.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it, vi } from 'vitest';

import {
  ErrorCode,
  InvalidOptionsError,
  InvalidRequestError,
  SessionPool,
  UnsupportedError,
  type SessionDestroyedEvent,
  type SessionPausedEvent,
  type SessionResumedEvent,
} from '../../src/index.js';
import { FakeBackend } from '../helpers/fake-backend.js';
import { PausableFakeBackend } from '../helpers/pausable-fake-backend.js';

const pools: SessionPool[] = [];
const dirs: string[] = [];
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sandpool-pause-test-'));
  dirs.push(dir);
  return join(dir, 'data');
}
function makePool(
  backend: PausableFakeBackend | FakeBackend,
  options: Partial<ConstructorParameters<typeof SessionPool>[0]> = {},
) {
  const pool = new SessionPool({ backend, containerType: 'NodeLTS', readySessionInstances: 1, ...options });
  pools.push(pool);
  return pool;
}

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(pools.splice(0).map((p) => p.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const value = async (session: { execute(o: { code: string }): Promise<{ result: unknown }> }, code: string) =>
  (await session.execute({ code })).result;

describe.each(['interpreter', 'machine'] as const)('pause and resume (%s level)', (level) => {
  it('pauses to disk, frees the session’s room, and resumes transparently on the next execution', async () => {
    const backend = new PausableFakeBackend(level);
    const pool = makePool(backend, { maxConcurrentSessions: 2 });
    const events: (SessionPausedEvent | SessionResumedEvent)[] = [];
    pool.on('sessionPaused', (e) => events.push(e)).on('sessionResumed', (e) => events.push(e));
    const session = await pool.acquire('user-1');
    await session.execute({ code: 'set:x=41' });
    await session.execute({ code: 'set:sock=open' });
    const paused = await session.pause();
    expect(session.state).toBe('Paused');
    expect(paused.bytes).toBeGreaterThan(0);
    expect(paused.lost.map((l) => l.name)).toEqual(level === 'interpreter' ? ['sock'] : []);
    expect(pool.stats()).toMatchObject({ paused: 1, allocated: 0 });
    expect(pool.stats().pausedBytes).toBe(paused.bytes + 0 * 1);
    // Its room went back: two more identifiers fit under maxConcurrentSessions 2.
    await pool.acquire('user-2');
    expect(await value(session, 'get:x')).toBe('41');
    expect(session.state).toBe('Allocated');
    expect(pool.get('user-1')).toBe(session);
    expect(pool.stats().paused).toBe(0);
    const resumed = events.find((e): e is SessionResumedEvent => 'kind' in e)!;
    expect(resumed).toMatchObject({ identifier: 'user-1', kind: 'resume', bytes: paused.bytes });
    expect(resumed.lost.map((l) => l.name)).toEqual(level === 'interpreter' ? ['sock'] : []);
    expect(events[0]).toMatchObject({ identifier: 'user-1', trigger: 'requested' });
  });

  it('resumes once for concurrent acquires, executions and file calls, in order', async () => {
    const backend = new PausableFakeBackend(level);
    const pool = makePool(backend);
    const session = await pool.acquire('user-c');
    await session.execute({ code: 'set:n=1' });
    await session.pause();
    const results = await Promise.all([
      pool.acquire('user-c'),
      session.execute({ code: 'set:n=2' }),
      pool.acquire('user-c'),
      session.execute({ code: 'get:n' }),
      session.resume(),
    ]);
    expect(results[0]).toBe(session);
    expect(results[2]).toBe(session);
    expect((results[3] as { result: unknown }).result).toBe('2');
    expect(backend.restores).toBe(1);
    expect(await session.resume()).toMatchObject({ resumed: false });
  });

  it('pauses idle sessions under idleAction "pause" instead of destroying them', async () => {
    const backend = new PausableFakeBackend(level);
    const pool = makePool(backend, { idleAction: 'pause', cooldownPeriodInSeconds: 0.05 });
    const paused = new Promise<SessionPausedEvent>((resolve) => pool.once('sessionPaused', resolve));
    const session = await pool.acquire('idle-1');
    await session.execute({ code: 'set:k=v' });
    expect((await paused).trigger).toBe('idle');
    expect(session.state).toBe('Paused');
    expect(pool.stats().destroyed.cooldown).toBe(0);
    expect(await value(session, 'get:k')).toBe('v');
  });

  it('deletes a paused session after maxPausedPeriodInSeconds, wiping its checkpoint', async () => {
    const backend = new PausableFakeBackend(level);
    const dir = dataDir();
    const pool = makePool(backend, { maxPausedPeriodInSeconds: 0.1, dataDirectory: dir });
    const destroyed = new Promise<SessionDestroyedEvent>((resolve) => pool.once('sessionDestroyed', resolve));
    const session = await pool.acquire('expires-1');
    await session.pause();
    expect(readdirSync(join(dir, 'paused'))).toHaveLength(1);
    expect((await destroyed).reason).toBe('pauseExpired');
    expect(readdirSync(join(dir, 'paused'))).toHaveLength(0);
    expect(pool.get('expires-1')).toBeUndefined();
    await expect(session.execute({ code: 'get:x' })).rejects.toMatchObject({ code: ErrorCode.SESSION_NOT_FOUND });
    expect(pool.stats().destroyed.pauseExpired).toBe(1);
  });

  it('extend() on a paused session pushes its deletion out', async () => {
    const pool = makePool(new PausableFakeBackend(level), { maxPausedPeriodInSeconds: 0.2 });
    const session = await pool.acquire('extend-paused');
    await session.pause();
    const until = await session.extend(60);
    expect(until!.getTime()).toBeGreaterThan(Date.now() + 50_000);
    expect(session.info().expiresAt?.getTime()).toBe(until!.getTime());
    await new Promise((r) => setTimeout(r, 300));
    expect(session.state).toBe('Paused');
  });

  it('release() and stop() delete a paused session and its files', async () => {
    const dir = dataDir();
    const pool = makePool(new PausableFakeBackend(level), { dataDirectory: dir });
    const a = await pool.acquire('release-a');
    const b = await pool.acquire('release-b');
    await a.pause();
    await b.pause();
    expect(await pool.release('release-a')).toBe(true);
    await b.stop();
    expect(readdirSync(join(dir, 'paused'))).toEqual([]);
    expect(pool.stats()).toMatchObject({ paused: 0, pausedBytes: 0 });
    expect(pool.stats().destroyed.stopped).toBe(2);
  });

  it('a checkpoint that cannot be restored fails that session clearly and no other', async () => {
    const backend = new PausableFakeBackend(level);
    const dir = dataDir();
    const pool = makePool(backend, { dataDirectory: dir });
    const bad = await pool.acquire('corrupt-1');
    const good = await pool.acquire('corrupt-2');
    await bad.execute({ code: 'set:x=1' });
    await good.execute({ code: 'set:x=2' });
    await bad.pause();
    await good.pause();
    const badEntry = readdirSync(join(dir, 'paused')).find(
      (id) => JSON.parse(readFileSync(join(dir, 'paused', id, 'manifest.json'), 'utf8')).identifier === 'corrupt-1',
    )!;
    writeFileSync(join(dir, 'paused', badEntry, 'state.json'), '{"vars": ');
    await expect(bad.execute({ code: 'get:x' })).rejects.toThrow(/corrupt/);
    expect(pool.get('corrupt-1')).toBeUndefined();
    expect(existsSync(join(dir, 'paused', badEntry))).toBe(false);
    expect(await value(good, 'get:x')).toBe('2');
    // The identifier starts over with a fresh session.
    expect(await value(await pool.acquire('corrupt-1'), 'get:x')).toBe('');
  });
});

describe('persistence', () => {
  it('keeps paused sessions in a 0700 data directory across pool instances (a restart) and resumes them', async () => {
    const dir = dataDir();
    const backend = new PausableFakeBackend('interpreter');
    const first = makePool(backend, { name: 'keep', dataDirectory: dir });
    const session = await first.acquire('survivor');
    await session.execute({ code: 'set:x=kept' });
    await session.pause();
    await first.close();
    for (const d of [dir, join(dir, 'paused')]) expect(statSync(d).mode & 0o777).toBe(0o700);
    const entry = readdirSync(join(dir, 'paused'))[0]!;
    expect(statSync(join(dir, 'paused', entry, 'manifest.json')).mode & 0o777).toBe(0o600);

    // A crash mid-pause leaves a directory without a manifest: the next start removes it.
    const crashed = join(dir, 'paused', 'f'.repeat(32));
    mkdirSync(crashed);
    writeFileSync(join(crashed, 'state.json'), 'half');
    const second = makePool(new PausableFakeBackend('interpreter'), { name: 'keep', dataDirectory: dir });
    const errors: string[] = [];
    second.on('error', (e) => errors.push(e.error.message));
    await second.start();
    expect(existsSync(crashed)).toBe(false);
    expect(errors.join()).toMatch(/never completed/);
    const again = second.get('survivor')!;
    expect(again.state).toBe('Paused');
    expect(second.stats().paused).toBe(1);
    expect(await value(await second.acquire('survivor'), 'get:x')).toBe('kept');
  });

  it('without a data directory, paused sessions live in a private temp dir wiped by close()', async () => {
    const pool = makePool(new PausableFakeBackend('machine'));
    const session = await pool.acquire('temp-1');
    await session.pause();
    const roots = readdirSync(tmpdir()).filter((n) => n.startsWith('sandpool-default-'));
    expect(roots.length).toBeGreaterThan(0);
    await pool.close();
    const after = readdirSync(tmpdir()).filter((n) => n.startsWith('sandpool-default-'));
    expect(after.length).toBe(roots.length - 1);
  });
});

describe.each(['interpreter', 'machine'] as const)('snapshots and forks (%s level)', (level) => {
  it('forks: the copy has the state, shares nothing writable, and draws different random numbers', async () => {
    const pool = makePool(new PausableFakeBackend(level));
    const source = await pool.acquire('source');
    await source.execute({ code: 'set:x=41' });
    const forked: SessionResumedEvent[] = [];
    pool.on('sessionResumed', (e) => forked.push(e));
    const a = await source.fork('fork-a');
    const b = await source.fork('fork-b');
    expect(await value(a, 'get:x')).toBe('41');
    await a.execute({ code: 'set:x=changed' });
    expect(await value(b, 'get:x')).toBe('41');
    expect(await value(source, 'get:x')).toBe('41');
    expect(source.state).toBe('Allocated');
    expect(await value(a, 'rand')).not.toBe(await value(b, 'rand'));
    expect(forked.map((e) => e.kind)).toEqual(['fork', 'fork']);
    expect(pool.snapshots()).toEqual([]); // fork's snapshots are transient
  });

  it('named snapshots start any number of sessions until deleted; bad ids and taken identifiers are refused', async () => {
    const pool = makePool(new PausableFakeBackend(level));
    const source = await pool.acquire('snap-source');
    await source.execute({ code: 'set:x=7' });
    const id = await pool.snapshot('snap-source');
    expect(pool.snapshots()).toMatchObject([{ id, identifier: 'snap-source' }]);
    for (const name of ['from-1', 'from-2']) expect(await value(await pool.acquire(name, { from: id }), 'get:x')).toBe('7');
    await expect(pool.acquire('from-1', { from: id })).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(pool.acquire('from-3', { from: 'f'.repeat(32) })).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(pool.acquire('from-3', { from: '../etc' })).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(source.fork('from-2')).rejects.toBeInstanceOf(InvalidRequestError);
    expect(pool.deleteSnapshot(id)).toBe(true);
    expect(pool.deleteSnapshot(id)).toBe(false);
    await expect(pool.acquire('from-4', { from: id })).rejects.toBeInstanceOf(InvalidRequestError);
    // A paused session can be snapshotted too (its checkpoint is copied); it stays paused.
    await source.pause();
    const fromPaused = await pool.snapshot('snap-source');
    expect(await value(await pool.acquire('from-paused', { from: fromPaused }), 'get:x')).toBe('7');
    expect(source.state).toBe('Paused');
  });
});

describe('capabilities', () => {
  it('rejects pause and fork with UnsupportedError on backends that cannot, and idleAction "pause" up front', async () => {
    const pool = makePool(new FakeBackend());
    const session = await pool.acquire('no-pause');
    await expect(session.pause()).rejects.toBeInstanceOf(UnsupportedError);
    await expect(session.fork('no-fork')).rejects.toBeInstanceOf(UnsupportedError);
    expect(session.state).toBe('Allocated');
    expect(() => new SessionPool({ backend: new FakeBackend(), idleAction: 'pause' })).toThrow(InvalidOptionsError);
  });

  it('keeps the session running when its checkpoint fails', async () => {
    const backend = new PausableFakeBackend('interpreter');
    const pool = makePool(backend);
    const session = await pool.acquire('ckpt-fails');
    await session.execute({ code: 'set:x=1' });
    backend.checkpoint = async () => {
      throw new Error('disk full');
    };
    await expect(session.pause()).rejects.toThrow(/disk full/);
    expect(session.state).toBe('Allocated');
    expect(await value(session, 'get:x')).toBe('1');
  });
});
