/** The on-disk store of paused sessions and snapshots: modes, atomic manifests, crash leftovers. */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { PauseStore } from '../../src/pool/pause-store.js';

const roots: string[] = [];
function store(): PauseStore {
  const root = mkdtempSync(join(tmpdir(), 'sandpool-store-test-'));
  roots.push(root);
  return new PauseStore(join(root, 'data'));
}

afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

const checkpoint = {
  level: 'interpreter' as const,
  bytes: 5,
  lost: [{ language: 'python', name: 'g', type: 'generator', reason: 'no' }],
  meta: { format: 1 },
};
const entry = (id: string, pool = 'p') => ({
  id,
  pool,
  backend: 'container',
  containerType: 'PythonLTS',
  identifier: 'user-1',
  sessionId: 's-1',
  sessionCreatedAt: 1,
  pausedAt: 2,
  checkpoint,
});

describe('PauseStore', () => {
  it('keeps everything private: 0700 directories, 0600 manifests, sizes measured', () => {
    const s = store();
    const { id, dir } = s.create('paused');
    writeFileSync(join(dir, 'state.bin'), 'x'.repeat(1000), { mode: 0o600 });
    const manifest = s.commit('paused', entry(id));
    expect(manifest.bytes).toBe(1000);
    for (const d of [s.root, join(s.root, 'paused'), dir]) expect(statSync(d).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'manifest.json')).mode & 0o777).toBe(0o600);
    expect(s.load('paused', id)).toMatchObject({ identifier: 'user-1', checkpoint: { lost: [{ name: 'g' }] } });
  });

  it('scans a pool’s entries, removing incomplete and corrupt ones and leaving other pools’ alone', () => {
    const s = store();
    const done = s.create('paused');
    s.commit('paused', entry(done.id));
    const other = s.create('paused');
    s.commit('paused', entry(other.id, 'other-pool'));
    const crashed = s.create('paused'); // never committed: a crash mid-pause
    writeFileSync(join(crashed.dir, 'state.bin'), 'half');
    const corrupt = s.create('paused');
    writeFileSync(join(corrupt.dir, 'manifest.json'), '{"format":1,');
    mkdirSync(join(s.root, 'paused', 'not-an-entry'));
    const { entries, removed } = s.scan('paused', 'p');
    expect(entries.map((e) => e.id)).toEqual([done.id]);
    expect(removed.map((r) => r.id).sort()).toEqual([crashed.id, corrupt.id].sort());
    expect(removed.find((r) => r.id === corrupt.id)?.reason).toMatch(/corrupt/);
    expect(existsSync(crashed.dir)).toBe(false);
    expect(existsSync(other.dir)).toBe(true);
    expect(readdirSync(join(s.root, 'paused'))).toContain('not-an-entry');
  });

  it('refuses ids that are not its own (no path tricks) and removes idempotently', () => {
    const s = store();
    expect(() => s.dir('paused', '../../etc')).toThrow(/invalid/);
    const { id, dir } = s.create('snapshots');
    s.remove('snapshots', id);
    s.remove('snapshots', id);
    expect(existsSync(dir)).toBe(false);
    expect(s.load('snapshots', id)).toBeUndefined();
    s.wipe();
    expect(existsSync(s.root)).toBe(false);
  });
});
