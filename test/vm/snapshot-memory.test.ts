/**
 * The sealed copy of a snapshot's RAM that session QEMUs map: same bytes, zero blocks left as
 * holes, and nobody (this process included) can write it any more.
 */
import { closeSync, fstatSync, mkdtempSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { memoryBackendArgs, sealedMemfdCopy, SnapshotMemory } from '../../backends/vm/snapshot-memory.js';

const dir = mkdtempSync(join(tmpdir(), 'sp-snapmem-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.runIf(process.platform === 'linux')('snapshot memory', () => {
  it('copies the file into a sealed memfd that refuses writes', async () => {
    const content = Buffer.concat([Buffer.from('head'), Buffer.alloc(200_000), Buffer.from('tail')]);
    const file = join(dir, 'ram.bin');
    writeFileSync(file, content);
    const fd = await sealedMemfdCopy(file);
    try {
      const copy = Buffer.alloc(content.length);
      expect(readSync(fd, copy, 0, copy.length, 0)).toBe(content.length);
      expect(copy.equals(content)).toBe(true);
      expect(fstatSync(fd).size).toBe(content.length);
      // F_SEAL_WRITE: even the process that holds it cannot write.
      expect(() => writeSync(fd, 'x', 0)).toThrow(/EPERM|not permitted/);
    } finally {
      closeSync(fd);
    }
  });

  it('reports a missing file as a BackendError instead of hanging', async () => {
    await expect(sealedMemfdCopy(join(dir, 'missing.bin'))).rejects.toMatchObject({ code: 'SANDPOOL_BACKEND_FAILED' });
  });

  it('maps a sealed memfd through /proc/self/fd and a plain file by path, always private on restore', async () => {
    const file = join(dir, 'small.bin');
    writeFileSync(file, Buffer.alloc(4096, 1));
    const sealed = await SnapshotMemory.open(file, true);
    const plain = await SnapshotMemory.open(file, false);
    try {
      expect(sealed.hostFd).toBeGreaterThan(2);
      expect(sealed.restoreArgs(256, 4).join(' ')).toContain('mem-path=/proc/self/fd/4,share=off');
      expect(plain.hostFd).toBeUndefined();
      expect(plain.restoreArgs(256, 4).join(' ')).toContain(`mem-path=${file},share=off`);
    } finally {
      sealed.close();
      sealed.close(); // idempotent
      plain.close();
    }
    expect(sealed.hostFd).toBeUndefined();
    expect(() => memoryBackendArgs(256, '/a,b', true)).toThrow(/unusable/);
  });
});
